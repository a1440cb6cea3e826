//! The run configuration: composes the sections (`[data]` from `data`, `[model]` from `models`,
//! `[train]` from `train`), applies `--set` overrides, and asks each section to validate itself.
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

/// Deserializes and validates; the error names the key, without saying where it came from.
fn from_table(mut table: toml::Table) -> std::result::Result<Config, String> {
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
            format!("{key}{}", e.into_inner().message().trim())
        })?;
    config.validate()?;
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
    /// Asks each section to check itself; the error names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.data.validate().map_err(|e| format!("data.{e}"))?;
        self.model.validate().map_err(|e| format!("model.{e}"))?;
        self.train.validate().map_err(|e| format!("train.{e}"))
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

/// The config a run folder was started with.
pub fn run_config(dir: &Path) -> Result<Config> {
    let path = dir.join(crate::train::run::CONFIG);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (is {} a run folder?)",
            path.display(),
            dir.display()
        )
    })?;
    from_str(&text, &path.display().to_string())
}
