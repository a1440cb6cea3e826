//! The run configuration: composes the sections (`[data]` from `data`, `[model]` from `models`,
//! `[train]` from `train`, `[eval]` from `tasks`), applies `--set` overrides, asks each section
//! to validate itself, and resolves what depends on the run's kind (its optimizers, its
//! evaluation settings) into explicit values.
//!
//! A config file states only what differs from the defaults. Every section denies unknown
//! fields, so a typo stops the run with an error naming the key and where it came from: the file,
//! or the `--set` that brought it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::data::DataConfig;
use crate::device::BackendKind;
use crate::models::ModelConfig;
use crate::run_files;
use crate::tasks::{self, EvalConfig};
use crate::train::TrainConfig;

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
    pub eval: EvalConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 42,
            backend: BackendKind::Flex,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            eval: EvalConfig::default(),
        }
    }
}

/// Loads a config: defaults, then the file (if any), then each `--set key=value` override.
/// An error names the file when the file alone is at fault, else the `--set` that made it so.
pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Config> {
    let (base, origin) = match file {
        Some(path) => (read_table(path)?, path.display().to_string()),
        None => (toml::Table::new(), "built-in defaults".to_string()),
    };
    let with = |n: usize| -> Result<toml::Table> {
        let mut table = base.clone();
        for item in &overrides[..n] {
            apply_override(&mut table, item)?;
        }
        Ok(table)
    };
    let error = match from_table(with(overrides.len())?) {
        Ok(config) => return Ok(config),
        Err(e) => e,
    };
    if let Err(e) = from_table(base.clone()) {
        bail!("{origin}: {e}");
    }
    // The last override that turns a valid config into an invalid one is at fault (earlier
    // ones may need later ones, as `model.cell` needs `model.kind = "rnn"`).
    let culprit = (0..overrides.len())
        .rev()
        .find(|&k| with(k).is_ok_and(|t| from_table(t).is_ok()))
        .unwrap_or(0);
    let blamed = match from_table(with(culprit + 1)?) {
        Err(e) => e,
        Ok(_) => error,
    };
    bail!("--set {}: {blamed}", overrides[culprit])
}

fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| line_of(&text, s.start))
            .unwrap_or_default();
        anyhow::anyhow!("{}{line}: {}", path.display(), e.message().trim())
    })
}

/// Parses a config from TOML text (used for the copy saved in a run folder).
pub fn from_str(text: &str, origin: &str) -> Result<Config> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {}", e.message().trim()))?;
    from_table(table).map_err(|e| anyhow::anyhow!("{origin}: {e}"))
}

/// Keys that left `[model]`, by the kind they belonged to: the old key and its new place.
const MOVED: &[(&str, &str, &str)] = &[
    ("gan", "lr_g", "train.optimizers.generator.lr"),
    ("gan", "lr_d", "train.optimizers.discriminator.lr"),
    ("gan", "beta1", "train.beta1"),
    ("gan", "beta2", "train.beta2"),
    ("gan", "loss", "train.gan.loss"),
    ("gan", "mode_seeking", "train.gan.mode_seeking"),
    ("gan", "ema", "train.gan.ema"),
    ("gan", "judge", "eval.judge"),
    ("gan", "judge_epochs", "eval.judge_epochs"),
    ("gan", "fid_samples", "eval.fid_samples"),
    ("gan", "gan_train_epochs", "eval.gan_train_epochs"),
    ("gan", "gan_train_ratio", "eval.gan_train_ratio"),
    ("restore", "lr_g", "train.optimizers.generator.lr"),
    ("restore", "lr_d", "train.optimizers.discriminator.lr"),
    ("restore", "beta1", "train.beta1"),
    ("restore", "beta2", "train.beta2"),
    ("restore", "adversarial", "train.restore.adversarial"),
    ("restore", "judge", "eval.judge"),
    ("restore", "judge_epochs", "eval.judge_epochs"),
    ("restore", "panel_images", "eval.panel_images"),
];

/// The `[model]` kind a table names (`cnn` when it names none).
fn kind_of(table: &toml::Table) -> String {
    match table.get("model").and_then(|m| m.get("kind")) {
        Some(toml::Value::String(k)) => k.clone(),
        _ => "cnn".into(),
    }
}

/// The moved keys a table holds in their old place, as (old, new).
fn moved_keys(table: &toml::Table) -> Vec<(&'static str, &'static str)> {
    let kind = kind_of(table);
    let Some(toml::Value::Table(model)) = table.get("model") else {
        return Vec::new();
    };
    MOVED
        .iter()
        .filter(|(k, old, _)| *k == kind && model.contains_key(*old))
        .map(|&(_, old, new)| (old, new))
        .collect()
}

/// A run folder's saved config as an earlier fovea wrote it, its keys moved to their places
/// now. Those versions also wrote `[train]`'s optimizer keys for a gan or restore run, which
/// that run ignored: they are dropped.
fn migrate(table: &mut toml::Table) -> std::result::Result<(), String> {
    let moved = moved_keys(table);
    if moved.is_empty() {
        return Ok(());
    }
    if let Some(toml::Value::Table(train)) = table.get_mut("train") {
        for key in ["optimizer", "lr", "momentum", "nesterov", "weight_decay"] {
            train.remove(key);
        }
    }
    for (old, new) in moved {
        let value = match table.get_mut("model") {
            Some(toml::Value::Table(model)) => model.remove(old),
            _ => None,
        };
        if let Some(value) = value {
            insert_at(table, new, value)
                .map_err(|part| format!("{part} is not a section (moving model.{old} to {new})"))?;
        }
    }
    Ok(())
}

/// Deserializes, validates and resolves; the error names the key, without saying where it came
/// from.
fn from_table(mut table: toml::Table) -> std::result::Result<Config, String> {
    if let Some((old, new)) = moved_keys(&table).first() {
        return Err(format!(
            "model.{old}: this key has moved; set {new} instead (see docs/configuration.md)"
        ));
    }
    // `[model]` is a tagged enum; a file that only tunes the default CNN may leave `kind` out.
    if let Some(toml::Value::Table(model)) = table.get_mut("model") {
        model
            .entry("kind")
            .or_insert_with(|| toml::Value::String("cnn".into()));
    }
    let mut config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." {
                String::new()
            } else {
                format!("{path}: ")
            };
            format!("{key}{}", e.into_inner().message().trim())
        })?;
    config.validate()?;
    config.resolve()?;
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
    if key.split('.').any(|p| p.is_empty()) {
        bail!("--set {item}: bad key `{key}`");
    }
    insert_at(table, key, value)
        .map_err(|part| anyhow::anyhow!("--set {item}: `{part}` is not a section"))
}

/// Puts `value` at the dotted `key` of `table`, making the sections on the way; `Err` with the
/// part of the key that names something other than a section.
fn insert_at(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
) -> std::result::Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = table;
    for part in &parts[..parts.len() - 1] {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(part.to_string()),
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
    /// Asks each section to check itself; the error names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.data.validate().map_err(|e| format!("data.{e}"))?;
        self.model.validate().map_err(|e| format!("model.{e}"))?;
        self.train.validate().map_err(|e| format!("train.{e}"))
    }

    /// Makes explicit what depends on the run's kind: every optimizer's settings (the task
    /// declares its optimizers and their defaults) and the kind's `[eval]` keys; refuses a key
    /// the kind cannot use. Resolving a resolved config changes nothing. A config built in code
    /// is resolved before it is run, saved or compared.
    pub fn resolve(&mut self) -> std::result::Result<(), String> {
        let kind = self.model.kind();
        let optimizers = tasks::optimizers(&self.model);
        self.train
            .resolve(&optimizers, kind)
            .map_err(|e| format!("train.{e}"))?;
        self.eval.resolve(kind).map_err(|e| format!("eval.{e}"))
    }

    /// This config resolved (see `resolve`).
    pub fn resolved(mut self) -> Result<Config> {
        self.resolve().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(self)
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
        assert_eq!(c.train.the_optimizer().lr, 0.01);
        assert_eq!(c.backend, BackendKind::Ndarray);
    }

    #[test]
    fn round_trip_through_toml() {
        let c = Config::default().resolved().unwrap();
        assert_eq!(from_str(&c.to_toml(), "x").unwrap(), c);
    }

    #[test]
    fn an_earlier_versions_run_folder_is_read_with_its_keys_moved_and_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(run_files::CONFIG);
        let old = "[model]\nkind = \"gan\"\nlr_g = 0.0003\nbeta1 = 0.4\nfid_samples = 99\n\
                   ema = 0.5\n[train]\nlr = 0.001\noptimizer = \"adam\"\n";
        std::fs::write(&path, old).unwrap();
        let c = run_config(dir.path()).unwrap();
        let (g, d) = (
            c.train.named_optimizer("generator"),
            c.train.named_optimizer("discriminator"),
        );
        assert_eq!((g.lr, g.beta1), (0.0003, 0.4));
        // the old train.lr, which a gan run ignored, is dropped: the task's default stands
        assert_eq!((d.lr, d.beta1), (0.0002, 0.4));
        assert_eq!(c.eval.fid_samples, Some(99));
        assert_eq!(c.train.gan.as_ref().map(|g| g.ema), Some(0.5));
        let err = format!("{:#}", load(Some(&path), &[]).unwrap_err());
        assert!(
            err.contains("model.lr_g: this key has moved; set train.optimizers.generator.lr"),
            "{err}"
        );
    }

    #[test]
    fn overrides_that_need_each_other_are_not_blamed() {
        // `model.cell` alone is wrong for the default cnn; with `model.kind=rnn` after it, fine.
        let c = load(None, &["model.cell=gru".into(), "model.kind=rnn".into()]).unwrap();
        assert_eq!(c.model.kind(), "rnn");
        let err = format!(
            "{:#}",
            load(
                None,
                &[
                    "model.cell=gru".into(),
                    "model.kind=rnn".into(),
                    "model.layers=0".into()
                ]
            )
            .unwrap_err()
        );
        assert!(
            err.starts_with("--set model.layers=0: model.layers"),
            "{err}"
        );
    }
}

/// The config a run folder was started with (its keys moved to their places now, when an
/// earlier fovea wrote it).
pub fn run_config(dir: &Path) -> Result<Config> {
    let path = dir.join(run_files::CONFIG);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (is {} a run folder?)",
            path.display(),
            dir.display()
        )
    })?;
    let origin = path.display().to_string();
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{origin}: {}", e.message().trim()))?;
    migrate(&mut table)
        .and_then(|()| from_table(table))
        .map_err(|e| anyhow::anyhow!("{origin}: {e}"))
}
