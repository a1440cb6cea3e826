//! `[train]`: how to train — epochs, batches, the optimizers, the learning-rate schedule,
//! checkpoints, and each task's own training settings (`[train.gan]`, `[train.restore]`).
//!
//! The optimizer keys of `[train]` itself (`optimizer`, `lr`, …) apply to every optimizer of a
//! run; a task with several names them, and `[train.optimizers.<name>]` sets one alone. A key a
//! file leaves out takes the task's default for that optimizer. `resolve` turns what a file
//! says into every optimizer's settings, once the run's kind is known.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Optimizer choice.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adam,
    Adamw,
}

/// Learning-rate schedule, a pure function of the global step (see `schedule`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Constant,
    Step,
    Cosine,
}

/// One optimizer's settings, resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerConfig {
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// SGD momentum (0 = plain SGD).
    pub momentum: f64,
    pub nesterov: bool,
    /// L2 weight decay (decoupled for AdamW).
    pub weight_decay: f64,
    /// Adam's and AdamW's decay rates of the moments.
    pub beta1: f64,
    pub beta2: f64,
    /// Clip each parameter's gradient norm to this value; absent = no clipping.
    pub grad_clip: Option<f64>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            grad_clip: None,
        }
    }
}

impl OptimizerConfig {
    /// Range checks; the error starts with the key.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(bool, &str, String); 6] = [
            (
                !(self.lr.is_finite() && self.lr > 0.0),
                "lr",
                format!("must be > 0 (got {})", self.lr),
            ),
            (
                !(0.0..1.0).contains(&self.momentum),
                "momentum",
                format!("must be in [0, 1) (got {})", self.momentum),
            ),
            (
                !(self.weight_decay >= 0.0),
                "weight_decay",
                format!("must be ≥ 0 (got {})", self.weight_decay),
            ),
            (
                !(0.0..1.0).contains(&self.beta1),
                "beta1",
                format!("must be in [0, 1) (got {})", self.beta1),
            ),
            (
                !(0.0..1.0).contains(&self.beta2),
                "beta2",
                format!("must be in [0, 1) (got {})", self.beta2),
            ),
            (
                self.grad_clip.is_some_and(|c| !(c > 0.0)),
                "grad_clip",
                "must be > 0".into(),
            ),
        ];
        for (bad, key, why) in checks {
            if bad {
                return Err(format!("{key} {why}"));
            }
        }
        if self.nesterov && (self.optimizer != OptimizerKind::Sgd || self.momentum == 0.0) {
            return Err("nesterov needs optimizer = \"sgd\" and momentum > 0".into());
        }
        Ok(())
    }
}

/// The optimizer keys as a file gives them: each one optional, the level below filling in what
/// is left out (`[train.optimizers.<name>]` over `[train]`'s own over the task's default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerKeys {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
}

impl OptimizerKeys {
    /// The names of the keys given, in the order of the struct.
    fn given(&self) -> Vec<&'static str> {
        let set = [
            ("optimizer", self.optimizer.is_some()),
            ("lr", self.lr.is_some()),
            ("momentum", self.momentum.is_some()),
            ("nesterov", self.nesterov.is_some()),
            ("weight_decay", self.weight_decay.is_some()),
            ("beta1", self.beta1.is_some()),
            ("beta2", self.beta2.is_some()),
            ("grad_clip", self.grad_clip.is_some()),
        ];
        set.iter().filter(|k| k.1).map(|k| k.0).collect()
    }

    /// `base` with the keys given here put over it.
    fn over(&self, base: OptimizerConfig) -> OptimizerConfig {
        OptimizerConfig {
            optimizer: self.optimizer.unwrap_or(base.optimizer),
            lr: self.lr.unwrap_or(base.lr),
            momentum: self.momentum.unwrap_or(base.momentum),
            nesterov: self.nesterov.unwrap_or(base.nesterov),
            weight_decay: self.weight_decay.unwrap_or(base.weight_decay),
            beta1: self.beta1.unwrap_or(base.beta1),
            beta2: self.beta2.unwrap_or(base.beta2),
            grad_clip: self.grad_clip.or(base.grad_clip),
        }
    }

    /// Every key given, from `c`.
    fn all(c: &OptimizerConfig) -> Self {
        OptimizerKeys {
            optimizer: Some(c.optimizer),
            lr: Some(c.lr),
            momentum: Some(c.momentum),
            nesterov: Some(c.nesterov),
            weight_decay: Some(c.weight_decay),
            beta1: Some(c.beta1),
            beta2: Some(c.beta2),
            grad_clip: c.grad_clip,
        }
    }
}

/// What optimizers a run's task has, each with its default settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Optimizers {
    /// None: the model is fitted another way (the kernel SVM's SMO).
    None,
    /// One, set by `[train]`'s own keys.
    One(OptimizerConfig),
    /// Several, by name, each also set by `[train.optimizers.<name>]`.
    Named(Vec<(&'static str, OptimizerConfig)>),
}

/// The adversarial loss of the GAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GanLoss {
    /// Non-saturating binary cross-entropy: D minimizes softplus(−D(x)) + softplus(D(G(z))),
    /// G minimizes softplus(−D(G(z))).
    Bce,
    /// Hinge: D minimizes relu(1 − D(x)) + relu(1 + D(G(z))), G minimizes −D(G(z)).
    Hinge,
}

/// `[train.gan]`: how a GAN is trained.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GanTraining {
    pub loss: GanLoss,
    /// Weight λ of the mode-seeking term (Mao et al., 2019) in the generator's loss: over the
    /// batch's pairs of images of one class (i, j), λ / (mean|G(zᵢ,y) − G(zⱼ,y)| /
    /// mean|zᵢ − zⱼ| + 1e−5) added, which penalizes a generator that ignores its noise (images
    /// of a class that all look alike). 0 = off.
    pub mode_seeking: f64,
    /// Decay β of an exponential moving average of the generator's weights, updated after every
    /// generator step: ema ← β·ema + (1 − β)·G. When β > 0 the average is the generator that is
    /// evaluated, drawn in the sample grids, by `fovea generate` and for `[data.synthetic]`; the
    /// trained one keeps playing the game. 0 = off.
    pub ema: f64,
}

impl Default for GanTraining {
    fn default() -> Self {
        Self {
            loss: GanLoss::Bce,
            mode_seeking: 0.0,
            ema: 0.0,
        }
    }
}

impl GanTraining {
    fn validate(&self) -> Result<(), String> {
        if !(self.mode_seeking >= 0.0 && self.mode_seeking.is_finite()) {
            return Err(format!(
                "mode_seeking must be ≥ 0 (got {})",
                self.mode_seeking
            ));
        }
        if !(0.0..1.0).contains(&self.ema) {
            return Err(format!(
                "ema is the average's decay β, in [0, 1) (got {}); 0 = off",
                self.ema
            ));
        }
        Ok(())
    }
}

/// `[train.restore]`: how a restorer is trained.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreTraining {
    /// Weight of the adversarial term next to the L1 reconstruction loss (weight 1); 0 turns the
    /// discriminator off (the same U-Net trained on L1 alone).
    pub adversarial: f64,
}

impl Default for RestoreTraining {
    fn default() -> Self {
        Self { adversarial: 0.01 }
    }
}

impl RestoreTraining {
    fn validate(&self) -> Result<(), String> {
        if !(self.adversarial >= 0.0 && self.adversarial.is_finite()) {
            return Err(format!(
                "adversarial must be ≥ 0 (got {})",
                self.adversarial
            ));
        }
        Ok(())
    }
}

/// What the semi-supervised GAN's generator minimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SsganGeneratorLoss {
    /// Feature matching (Salimans et al., 2016): the squared distance between the mean features
    /// (the classifier's last hidden layer) of an unlabelled batch and of a generated one,
    /// averaged over the features.
    FeatureMatching,
    /// The non-saturating GAN loss: −log D(G(z)) = softplus(−log Z(G(z))).
    NonSaturating,
}

/// `[train.ssgan]`: how a semi-supervised GAN is trained.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SsganTraining {
    pub generator_loss: SsganGeneratorLoss,
    /// Weight of the unsupervised terms (unlabelled images real, generated ones generated) next
    /// to the labelled images' cross-entropy (weight 1).
    pub unsupervised_weight: f64,
    /// Standard deviation of Gaussian noise added to every image the classifier reads in
    /// training (labelled, unlabelled and generated; in the normalized space, where a pixel's
    /// standard deviation is 1). 0 = none.
    pub input_noise: f64,
}

impl Default for SsganTraining {
    fn default() -> Self {
        Self {
            generator_loss: SsganGeneratorLoss::FeatureMatching,
            unsupervised_weight: 0.5,
            input_noise: 0.0,
        }
    }
}

impl SsganTraining {
    fn validate(&self) -> Result<(), String> {
        if !(self.unsupervised_weight >= 0.0 && self.unsupervised_weight.is_finite()) {
            return Err(format!(
                "unsupervised_weight must be ≥ 0 (got {})",
                self.unsupervised_weight
            ));
        }
        if !(self.input_noise >= 0.0 && self.input_noise.is_finite()) {
            return Err(format!(
                "input_noise must be ≥ 0 (got {})",
                self.input_noise
            ));
        }
        Ok(())
    }
}

/// `[train]` of a config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// The optimizer keys every optimizer of the run shares (see `OptimizerKeys`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    /// Each optimizer's own keys, by name, for a task with several.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub optimizers: BTreeMap<String, OptimizerKeys>,
    pub schedule: ScheduleKind,
    /// Linear warm-up from 0 to the peak over this many epochs (fractions allowed).
    pub warmup_epochs: f64,
    /// `step` schedule: multiply the LR by `step_gamma` every `step_epochs` epochs.
    pub step_epochs: usize,
    pub step_gamma: f64,
    /// `cosine` schedule: the LR it decays to at the end of training (runs with one optimizer).
    pub min_lr: f64,
    /// Also checkpoint every N optimizer steps (0 = only at epoch ends).
    pub checkpoint_every: usize,
    /// Keep this many most recent checkpoints (the best one is kept besides).
    pub keep_last: usize,
    /// Write a training line to metrics.jsonl every N steps (0 = only per epoch).
    pub log_every: usize,
    /// Batch size for validation, test and predict.
    pub eval_batch_size: usize,
    /// Validate (and pick the best checkpoint) every N epochs, and always after the last one.
    pub eval_every: usize,
    /// `[train.gan]` (gan runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gan: Option<GanTraining>,
    /// `[train.restore]` (restore runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreTraining>,
    /// `[train.ssgan]` (ssgan runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssgan: Option<SsganTraining>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 64,
            optimizer: None,
            lr: None,
            momentum: None,
            nesterov: None,
            weight_decay: None,
            beta1: None,
            beta2: None,
            grad_clip: None,
            optimizers: BTreeMap::new(),
            schedule: ScheduleKind::Cosine,
            warmup_epochs: 0.0,
            step_epochs: 5,
            step_gamma: 0.1,
            min_lr: 0.0,
            checkpoint_every: 200,
            keep_last: 3,
            log_every: 50,
            eval_batch_size: 256,
            eval_every: 1,
            gan: None,
            restore: None,
            ssgan: None,
        }
    }
}

impl TrainConfig {
    /// The optimizer keys of `[train]` itself.
    fn shared(&self) -> OptimizerKeys {
        OptimizerKeys {
            optimizer: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            beta1: self.beta1,
            beta2: self.beta2,
            grad_clip: self.grad_clip,
        }
    }

    fn set_shared(&mut self, k: OptimizerKeys) {
        self.optimizer = k.optimizer;
        self.lr = k.lr;
        self.momentum = k.momentum;
        self.nesterov = k.nesterov;
        self.weight_decay = k.weight_decay;
        self.beta1 = k.beta1;
        self.beta2 = k.beta2;
        self.grad_clip = k.grad_clip;
    }

    /// The settings of the run's one optimizer (`Optimizers::One`, after `resolve`).
    pub fn the_optimizer(&self) -> OptimizerConfig {
        self.shared().over(OptimizerConfig::default())
    }

    /// The settings of optimizer `name` (`Optimizers::Named`, after `resolve`).
    pub fn named_optimizer(&self, name: &str) -> OptimizerConfig {
        let own = self.optimizers.get(name).cloned().unwrap_or_default();
        own.over(self.shared().over(OptimizerConfig::default()))
    }

    /// Every optimizer's settings made explicit, for a task with `optimizers`, of kind `kind`,
    /// and the task's own section given a value: a run with one optimizer keeps them in
    /// `[train]`'s own keys, a run with several in `[train.optimizers.<name>]` (the shared keys
    /// folded into each). The same config resolved twice gives the same config. Refused, with
    /// the key inside `[train]` first: a key this run cannot use (an optimizer key when there is
    /// no optimizer, an unknown or single optimizer's name, a shared key every optimizer
    /// overrides, `[train.gan]` on a run of another kind).
    pub fn resolve(&mut self, optimizers: &Optimizers, kind: &str) -> Result<(), String> {
        let shared = self.shared();
        match optimizers {
            Optimizers::None => {
                if let Some(key) = shared.given().first() {
                    return Err(format!(
                        "{key}: a {kind} run is fitted by its solver, with no optimizer"
                    ));
                }
                if let Some(name) = self.optimizers.keys().next() {
                    return Err(format!(
                        "optimizers.{name}: a {kind} run is fitted by its solver, with no optimizer"
                    ));
                }
            }
            Optimizers::One(default) => {
                if let Some(name) = self.optimizers.keys().next() {
                    return Err(format!(
                        "optimizers.{name}: a {kind} run has one optimizer, set by [train]'s own \
                         keys (train.lr, train.optimizer, …)"
                    ));
                }
                let resolved = shared.over(*default);
                resolved.validate()?;
                if !(self.min_lr >= 0.0 && self.min_lr <= resolved.lr) {
                    return Err(format!("min_lr must be in [0, lr] (got {})", self.min_lr));
                }
                self.set_shared(OptimizerKeys::all(&resolved));
            }
            Optimizers::Named(named) => {
                let names: Vec<&str> = named.iter().map(|n| n.0).collect();
                if let Some(name) = self
                    .optimizers
                    .keys()
                    .find(|n| !names.contains(&n.as_str()))
                {
                    return Err(format!(
                        "optimizers.{name}: a {kind} run's optimizers are {}",
                        names.join(" and ")
                    ));
                }
                for key in shared.given() {
                    let overridden = names.iter().all(|n| {
                        self.optimizers
                            .get(*n)
                            .is_some_and(|o| o.given().contains(&key))
                    });
                    if overridden {
                        let each: Vec<String> = names
                            .iter()
                            .map(|n| format!("train.optimizers.{n}.{key}"))
                            .collect();
                        return Err(format!(
                            "{key} is set, but every optimizer of this {kind} run sets its own ({}): \
                             it would be ignored",
                            each.join(", ")
                        ));
                    }
                }
                if self.min_lr != 0.0 {
                    return Err(format!(
                        "min_lr is the cosine schedule's floor for a run with one learning rate; a \
                         {kind} run has one per optimizer ({}): leave it at 0",
                        names.join(", ")
                    ));
                }
                let mut resolved = BTreeMap::new();
                for (name, default) in named {
                    let own = self.optimizers.get(*name).cloned().unwrap_or_default();
                    let c = own.over(shared.over(*default));
                    c.validate().map_err(|e| format!("optimizers.{name}.{e}"))?;
                    resolved.insert(name.to_string(), OptimizerKeys::all(&c));
                }
                self.optimizers = resolved;
                self.set_shared(OptimizerKeys::default());
            }
        }
        let is = |k: &str| kind == k;
        if self.gan.is_some() && !is("gan") {
            return Err(format!(
                "gan: [train.gan] applies to gan runs; this is a {kind} run"
            ));
        }
        if self.restore.is_some() && !is("restore") {
            return Err(format!(
                "restore: [train.restore] applies to restore runs; this is a {kind} run"
            ));
        }
        if self.ssgan.is_some() && !is("ssgan") {
            return Err(format!(
                "ssgan: [train.ssgan] applies to ssgan runs; this is a {kind} run"
            ));
        }
        if is("ssgan") {
            let ssgan = self.ssgan.get_or_insert_with(SsganTraining::default);
            ssgan.validate().map_err(|e| format!("ssgan.{e}"))?;
        }
        if is("gan") {
            let gan = self.gan.get_or_insert_with(GanTraining::default);
            gan.validate().map_err(|e| format!("gan.{e}"))?;
        }
        if is("restore") {
            let restore = self.restore.get_or_insert_with(RestoreTraining::default);
            restore.validate().map_err(|e| format!("restore.{e}"))?;
        }
        Ok(())
    }

    /// Range checks serde cannot express (the optimizers' are `resolve`'s); the error starts
    /// with the key inside `[train]`.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(bool, &str, String); 6] = [
            (self.epochs == 0, "epochs", "must be at least 1".into()),
            (
                self.batch_size == 0,
                "batch_size",
                "must be at least 1".into(),
            ),
            (
                self.eval_batch_size == 0,
                "eval_batch_size",
                "must be at least 1".into(),
            ),
            (
                !(self.warmup_epochs >= 0.0 && self.warmup_epochs.is_finite()),
                "warmup_epochs",
                format!("must be ≥ 0 (got {})", self.warmup_epochs),
            ),
            (
                self.eval_every == 0,
                "eval_every",
                "must be at least 1".into(),
            ),
            (
                self.keep_last == 0,
                "keep_last",
                "must be at least 1".into(),
            ),
        ];
        for (bad, key, why) in checks {
            if bad {
                return Err(format!("{key} {why}"));
            }
        }
        if !(self.min_lr >= 0.0) {
            return Err(format!("min_lr must be ≥ 0 (got {})", self.min_lr));
        }
        if self.schedule == ScheduleKind::Step
            && (self.step_epochs == 0 || !(self.step_gamma > 0.0))
        {
            return Err(
                "step_epochs must be ≥ 1 and step_gamma > 0 for schedule = \"step\"".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gan() -> Optimizers {
        let adam = OptimizerConfig {
            lr: 2e-4,
            beta1: 0.5,
            ..Default::default()
        };
        Optimizers::Named(vec![("generator", adam), ("discriminator", adam)])
    }

    #[test]
    fn one_optimizer_takes_the_shared_keys_over_its_defaults() {
        let mut t = TrainConfig {
            lr: Some(0.01),
            ..Default::default()
        };
        t.resolve(&Optimizers::One(OptimizerConfig::default()), "cnn")
            .unwrap();
        let o = t.the_optimizer();
        assert_eq!(
            (o.lr, o.optimizer, o.beta1),
            (0.01, OptimizerKind::Adam, 0.9)
        );
        assert_eq!(t.lr, Some(0.01));
        assert_eq!(t.beta2, Some(0.999), "every key made explicit");
        let again = t.clone();
        t.resolve(&Optimizers::One(OptimizerConfig::default()), "cnn")
            .unwrap();
        assert_eq!(t, again, "resolving twice changes nothing");
    }

    #[test]
    fn named_optimizers_take_their_own_keys_over_the_shared_ones() {
        let mut t = TrainConfig {
            lr: Some(1e-3),
            ..Default::default()
        };
        t.optimizers.insert(
            "discriminator".into(),
            OptimizerKeys {
                lr: Some(4e-4),
                ..Default::default()
            },
        );
        t.resolve(&gan(), "gan").unwrap();
        assert_eq!(t.named_optimizer("generator").lr, 1e-3);
        assert_eq!(t.named_optimizer("discriminator").lr, 4e-4);
        assert_eq!(
            t.named_optimizer("generator").beta1,
            0.5,
            "the task's default"
        );
        assert_eq!(t.lr, None, "folded into each optimizer");
        assert!(t.gan.is_some(), "[train.gan] given its defaults");
        let again = t.clone();
        t.resolve(&gan(), "gan").unwrap();
        assert_eq!(t, again, "resolving twice changes nothing");
    }

    #[test]
    fn a_key_the_run_cannot_use_is_refused() {
        let err =
            |t: TrainConfig, o: &Optimizers, kind: &str| t.clone().resolve(o, kind).unwrap_err();
        let lr = TrainConfig {
            lr: Some(0.1),
            ..Default::default()
        };
        assert!(
            err(lr.clone(), &Optimizers::None, "kernel-svm").starts_with("lr: a kernel-svm run")
        );
        let mut named = TrainConfig::default();
        named
            .optimizers
            .insert("generator".into(), OptimizerKeys::default());
        let one = Optimizers::One(OptimizerConfig::default());
        assert!(
            err(named.clone(), &one, "cnn").starts_with("optimizers.generator: a cnn run has one")
        );
        let mut unknown = TrainConfig::default();
        unknown
            .optimizers
            .insert("critic".into(), OptimizerKeys::default());
        assert_eq!(
            err(unknown, &gan(), "gan"),
            "optimizers.critic: a gan run's optimizers are generator and discriminator"
        );
        let mut shadowed = lr.clone();
        for n in ["generator", "discriminator"] {
            shadowed.optimizers.insert(
                n.into(),
                OptimizerKeys {
                    lr: Some(1e-4),
                    ..Default::default()
                },
            );
        }
        assert!(err(shadowed, &gan(), "gan").starts_with("lr is set, but every optimizer"));
        let floor = TrainConfig {
            min_lr: 1e-5,
            ..Default::default()
        };
        assert!(err(floor, &gan(), "gan").starts_with("min_lr"));
        let gan_section = TrainConfig {
            gan: Some(GanTraining::default()),
            ..Default::default()
        };
        assert!(err(gan_section, &one, "cnn").starts_with("gan: [train.gan] applies to gan runs"));
        let bad = TrainConfig {
            beta1: Some(1.0),
            ..Default::default()
        };
        assert!(err(bad, &gan(), "gan").starts_with("optimizers.generator.beta1 must be"));
    }
}
