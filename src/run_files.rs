//! The files a run folder holds: their names, and the schemas of `run.json`, `metrics.jsonl`,
//! the curves drawn from it and `summary.json`. The loop that writes them and the reports and
//! commands that read them share these definitions and nothing else.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::DataSource;
use crate::data::batch::Normalizer;

/// The resolved config the run was started with.
pub const CONFIG: &str = "config.toml";
pub const RUN_JSON: &str = "run.json";
pub const CHECKPOINTS: &str = "checkpoints";
pub const METRICS: &str = "metrics.jsonl";
pub const METRICS_CSV: &str = "metrics.csv";
/// The test metrics, written when the run completes.
pub const SUMMARY: &str = "summary.json";

/// Metric values by name.
pub type Values = BTreeMap<String, f64>;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1-based epoch the record belongs to.
    pub epoch: usize,
    /// Optimizer steps done when the record was written.
    pub step: u64,
    /// `train` or `val`.
    pub split: String,
    /// `step` (a logging interval) or `epoch` (a whole epoch).
    pub scope: String,
    /// The task's metrics for this split, and the learning rate of each optimizer.
    #[serde(flatten)]
    pub values: Values,
    pub images_per_sec: f64,
    /// Seconds of training so far (across resumes).
    pub elapsed_s: f64,
}

impl Record {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }
}

/// Every record of a run. A line that is not a record is an error that names its line: a
/// metrics file with a line fovea cannot read is not one it can silently trust or rewrite.
pub fn read_metrics(run: &Path) -> Result<Vec<Record>> {
    let path = run.join(METRICS);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| {
                format!(
                    "{} line {}: not a metrics record ({}); fix or delete that line, then try again",
                    path.display(),
                    i + 1,
                    shorten(line)
                )
            })
        })
        .collect()
}

fn shorten(line: &str) -> String {
    match line.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// One PNG of curves: the named metrics on the training steps, training epochs and validation.
#[derive(Debug, Clone)]
pub struct Curve {
    pub file: &'static str,
    pub title: &'static str,
    pub y_label: &'static str,
    pub metrics: Vec<&'static str>,
}

/// One `fovea resume` of a run, as `run.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Resume {
    pub time: String,
    pub backend: String,
    pub device: String,
    pub threads: usize,
    /// The checkpoint it continued from (none: the run had none and started over).
    pub checkpoint: Option<String>,
    /// The optimizer step it continued from.
    pub step: u64,
}

/// `run.json`: what produced the run, on what, from which data. `backend`, `device` and
/// `threads` are those the run started on; each resume records its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub fovea_version: String,
    pub git_commit: Option<String>,
    pub burn_version: String,
    pub backend: String,
    pub device: String,
    pub threads: usize,
    pub command: Vec<String>,
    pub data: DataSource,
    pub normalizer: Normalizer,
    pub started: String,
    pub ended: Option<String>,
    /// `running`, `completed`, `interrupted` or `failed: …`.
    pub status: String,
    /// Every resume, in order.
    pub resumes: Vec<Resume>,
}

/// Reads `run.json` of a run folder.
pub fn read_info(dir: &Path) -> Result<RunInfo> {
    let path = dir.join(RUN_JSON);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid run record", path.display()))
}

/// A finished run's `summary.json`.
pub fn read_summary(dir: &Path) -> Result<Value> {
    let path = dir.join(SUMMARY);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

pub fn git_commit() -> Option<String> {
    option_env!("FOVEA_GIT_COMMIT")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
