//! The run configuration: the TOML schema with its defaults, `--set` overrides and validation.
//!
//! A config file states only what differs from the defaults below. Every struct denies unknown
//! fields, so a typo stops the run with an error naming the key and the file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::device::BackendKind;
use crate::models::ModelConfig;

/// The whole run configuration, as resolved from defaults, a file and `--set` overrides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Seed for weight init, data order, the validation split, augmentation and dropout.
    pub seed: u64,
    /// Compute backend: `flex` (CPU, default), `ndarray` (CPU, deprecated by Burn) or `wgpu` (GPU).
    pub backend: BackendKind,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 42,
            backend: BackendKind::Flex,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
        }
    }
}

/// Which images to train and test on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `fashion-mnist`, `mnist`, `kmnist`, `cifar10`, `folder` (needs `path`) or `sample`.
    pub dataset: String,
    /// Explicit location of the dataset's files; empty: resolve by name (see `fovea data info`).
    pub path: Option<PathBuf>,
    /// Fraction of the training set held out for validation (0 ≤ f < 1), chosen by the seed.
    pub val_fraction: f64,
    /// Use at most this many training images (after the validation split); 0 = all.
    pub train_limit: usize,
    /// Use at most this many test images; 0 = all.
    pub test_limit: usize,
    /// For `folder` datasets: fraction of the images held out as the test set.
    pub test_fraction: f64,
    /// For `folder` datasets: resize every image to this size (height = width); 0 = keep the first image's size.
    pub image_size: usize,
    pub augment: AugmentConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: "sample".into(),
            path: None,
            val_fraction: 0.1,
            train_limit: 0,
            test_limit: 0,
            test_fraction: 0.2,
            image_size: 0,
            augment: AugmentConfig::default(),
        }
    }
}

/// Random training-time augmentation. Off by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Random shift of up to this many pixels in each direction (a random crop of the zero-padded image).
    pub shift: usize,
    /// Random horizontal flip with probability 0.5.
    pub flip: bool,
}

/// Optimizer choice.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adam,
    Adamw,
}

/// Learning-rate schedule, a pure function of the global step (see `train::schedule`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Constant,
    Step,
    Cosine,
}

/// How to train.
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
    /// Clip the global gradient norm to this value; absent = no clipping.
    pub grad_clip: Option<f64>,
    /// Also checkpoint every N optimizer steps (0 = only at epoch ends).
    pub checkpoint_every: usize,
    /// Keep this many most recent checkpoints (the best one is kept besides).
    pub keep_last: usize,
    /// Write a training line to metrics.jsonl every N steps (0 = only per epoch).
    pub log_every: usize,
    /// Batch size for validation, test and predict.
    pub eval_batch_size: usize,
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
        }
    }
}

/// Loads a config: defaults, then the file (if any), then each `--set key=value` override.
/// Errors name the file, the key and the bad value.
pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Config> {
    let (mut table, origin) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| {
                let line = e
                    .span()
                    .map(|s| line_of(&text, s.start))
                    .unwrap_or_default();
                anyhow::anyhow!("{}{line}: {}", path.display(), e.message().trim())
            })?;
            (table, path.display().to_string())
        }
        None => (toml::Table::new(), "built-in defaults".to_string()),
    };
    for item in overrides {
        apply_override(&mut table, item)?;
    }
    from_table(table, &origin)
}

/// Parses a config from TOML text (used for the copy saved in a run folder).
pub fn from_str(text: &str, origin: &str) -> Result<Config> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {}", e.message().trim()))?;
    from_table(table, origin)
}

fn from_table(mut table: toml::Table, origin: &str) -> Result<Config> {
    // `[model]` is a tagged enum; a file that only tunes the default CNN may leave `kind` out.
    if let Some(toml::Value::Table(model)) = table.get_mut("model") {
        model
            .entry("kind")
            .or_insert_with(|| toml::Value::String("cnn".into()));
    }
    let config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." {
                String::new()
            } else {
                format!("{path}: ")
            };
            anyhow::anyhow!("{origin}: {key}{}", e.into_inner().message().trim())
        })?;
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    Ok(config)
}

/// `section.key=value`: the value is read as TOML (`3`, `0.1`, `true`, `"x"`, `[1, 2]`), and as a
/// bare string when it is not valid TOML (`--set model.kind=cnn`).
fn apply_override(table: &mut toml::Table, item: &str) -> Result<()> {
    let Some((key, raw)) = item.split_once('=') else {
        bail!("--set {item}: expected section.key=value");
    };
    let key = key.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed table has the key"),
        Err(_) => toml::Value::String(raw.trim().to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set {item}: bad key `{key}`");
    }
    let mut node = table;
    for part in &parts[..parts.len() - 1] {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("--set {item}: `{part}` is not a section"),
        };
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

fn line_of(text: &str, offset: usize) -> String {
    let line = text[..offset.min(text.len())].matches('\n').count() + 1;
    format!(":{line}")
}

impl Config {
    /// Range checks serde cannot express. The error names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let t = &self.train;
        let d = &self.data;
        let checks: [(bool, &str, String); 12] = [
            (t.epochs == 0, "train.epochs", "must be at least 1".into()),
            (
                t.batch_size == 0,
                "train.batch_size",
                "must be at least 1".into(),
            ),
            (
                t.eval_batch_size == 0,
                "train.eval_batch_size",
                "must be at least 1".into(),
            ),
            (
                !(t.lr.is_finite() && t.lr > 0.0),
                "train.lr",
                format!("must be > 0 (got {})", t.lr),
            ),
            (
                !(0.0..1.0).contains(&t.momentum),
                "train.momentum",
                format!("must be in [0, 1) (got {})", t.momentum),
            ),
            (
                !(t.weight_decay >= 0.0),
                "train.weight_decay",
                format!("must be ≥ 0 (got {})", t.weight_decay),
            ),
            (
                !(t.warmup_epochs >= 0.0),
                "train.warmup_epochs",
                format!("must be ≥ 0 (got {})", t.warmup_epochs),
            ),
            (
                !(t.min_lr >= 0.0 && t.min_lr <= t.lr),
                "train.min_lr",
                format!("must be in [0, lr] (got {})", t.min_lr),
            ),
            (
                t.grad_clip.is_some_and(|c| !(c > 0.0)),
                "train.grad_clip",
                "must be > 0".into(),
            ),
            (
                t.keep_last == 0,
                "train.keep_last",
                "must be at least 1".into(),
            ),
            (
                !(0.0..1.0).contains(&d.val_fraction),
                "data.val_fraction",
                format!("must be in [0, 1) (got {})", d.val_fraction),
            ),
            (
                !(d.test_fraction > 0.0 && d.test_fraction < 1.0),
                "data.test_fraction",
                format!("must be in (0, 1) (got {})", d.test_fraction),
            ),
        ];
        for (bad, key, why) in checks {
            if bad {
                return Err(format!("{key} {why}"));
            }
        }
        if t.schedule == ScheduleKind::Step && (t.step_epochs == 0 || !(t.step_gamma > 0.0)) {
            return Err(
                "train.step_epochs must be ≥ 1 and train.step_gamma > 0 for schedule = \"step\""
                    .into(),
            );
        }
        if t.nesterov && (t.optimizer != OptimizerKind::Sgd || t.momentum == 0.0) {
            return Err("train.nesterov needs optimizer = \"sgd\" and momentum > 0".into());
        }
        crate::data::check_dataset_name(&d.dataset).map_err(|e| format!("data.dataset {e}"))?;
        self.model.validate().map_err(|e| format!("model.{e}"))
    }

    /// The resolved config as TOML, as saved into a run folder.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_parses_types() {
        let c = load(
            None,
            &[
                "train.epochs=3".into(),
                "train.lr=0.01".into(),
                "backend=ndarray".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.train.epochs, 3);
        assert_eq!(c.train.lr, 0.01);
        assert_eq!(c.backend, BackendKind::Ndarray);
    }

    #[test]
    fn round_trip_through_toml() {
        let c = Config::default();
        assert_eq!(from_str(&c.to_toml(), "x").unwrap(), c);
    }
}
