//! `[train]`: how to train — epochs, batches, optimizer, learning-rate schedule, checkpoints.

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

/// `[train]` of a config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    pub optimizer: OptimizerKind,
    /// SGD momentum (0 = plain SGD).
    pub momentum: f64,
    pub nesterov: bool,
    /// L2 weight decay (decoupled for AdamW).
    pub weight_decay: f64,
    pub schedule: ScheduleKind,
    /// Linear warm-up from 0 to `lr` over this many epochs (fractions allowed).
    pub warmup_epochs: f64,
    /// `step` schedule: multiply the LR by `step_gamma` every `step_epochs` epochs.
    pub step_epochs: usize,
    pub step_gamma: f64,
    /// `cosine` schedule: the LR it decays to at the end of training.
    pub min_lr: f64,
    /// Clip each parameter's gradient norm to this value; absent = no clipping.
    pub grad_clip: Option<f64>,
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
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            schedule: ScheduleKind::Cosine,
            warmup_epochs: 0.0,
            step_epochs: 5,
            step_gamma: 0.1,
            min_lr: 0.0,
            grad_clip: None,
            checkpoint_every: 200,
            keep_last: 3,
            log_every: 50,
            eval_batch_size: 256,
            eval_every: 1,
        }
    }
}

impl TrainConfig {
    /// Range checks serde cannot express; the error starts with the key inside `[train]`.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(bool, &str, String); 11] = [
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
                !(self.warmup_epochs >= 0.0 && self.warmup_epochs.is_finite()),
                "warmup_epochs",
                format!("must be ≥ 0 (got {})", self.warmup_epochs),
            ),
            (
                !(self.min_lr >= 0.0 && self.min_lr <= self.lr),
                "min_lr",
                format!("must be in [0, lr] (got {})", self.min_lr),
            ),
            (
                self.grad_clip.is_some_and(|c| !(c > 0.0)),
                "grad_clip",
                "must be > 0".into(),
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
        if self.schedule == ScheduleKind::Step
            && (self.step_epochs == 0 || !(self.step_gamma > 0.0))
        {
            return Err(
                "step_epochs must be ≥ 1 and step_gamma > 0 for schedule = \"step\"".into(),
            );
        }
        if self.nesterov && (self.optimizer != OptimizerKind::Sgd || self.momentum == 0.0) {
            return Err("nesterov needs optimizer = \"sgd\" and momentum > 0".into());
        }
        Ok(())
    }
}
