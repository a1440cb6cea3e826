//! The metrics a run writes: `metrics.jsonl` (one object per logging step and per epoch and
//! split), `metrics.csv` (one row per epoch, derived from the JSONL) and `summary.json`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const JSONL: &str = "metrics.jsonl";
pub const CSV: &str = "metrics.csv";
pub const SUMMARY: &str = "summary.json";

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
    pub loss: f64,
    pub accuracy: f64,
    pub lr: f64,
    pub images_per_sec: f64,
    /// Seconds of training so far (across resumes).
    pub elapsed_s: f64,
}

pub fn append(run: &Path, record: &Record) -> Result<()> {
    let path = run.join(JSONL);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut line = serde_json::to_string(record)?;
    line.push('\n');
    f.write_all(line.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn read_all(run: &Path) -> Result<Vec<Record>> {
    let path = run.join(JSONL);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    // A crash can cut the last line short; everything before it is whole.
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Drops records written after `step` (work a crash threw away), rewriting the file atomically.
pub fn truncate_after(run: &Path, step: u64) -> Result<()> {
    let keep: Vec<Record> = read_all(run)?
        .into_iter()
        .filter(|r| r.step <= step)
        .collect();
    let mut text = String::new();
    for r in &keep {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    super::checkpoint::write_atomic(&run.join(JSONL), text.as_bytes())
}

/// Rewrites `metrics.csv` from the epoch records.
pub fn write_csv(run: &Path, records: &[Record]) -> Result<()> {
    let mut out = String::from(
        "epoch,step,train_loss,train_accuracy,val_loss,val_accuracy,lr,images_per_sec,elapsed_s\n",
    );
    let epochs = records
        .iter()
        .filter(|r| r.scope == "epoch")
        .map(|r| r.epoch)
        .max()
        .unwrap_or(0);
    for e in 1..=epochs {
        let find = |split: &str| {
            records
                .iter()
                .rev()
                .find(|r| r.scope == "epoch" && r.epoch == e && r.split == split)
        };
        let Some(train) = find("train") else { continue };
        let (vl, va) = find("val")
            .map(|v| (format!("{:.6}", v.loss), format!("{:.6}", v.accuracy)))
            .unwrap_or_default();
        out.push_str(&format!(
            "{e},{},{:.6},{:.6},{vl},{va},{:.6e},{:.1},{:.1}\n",
            train.step, train.loss, train.accuracy, train.lr, train.images_per_sec, train.elapsed_s
        ));
    }
    std::fs::write(run.join(CSV), out)
        .with_context(|| format!("cannot write {}", run.join(CSV).display()))
}

/// Loss, accuracy, per-class accuracy and the confusion matrix of a classifier on a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub count: usize,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let n: usize = row.iter().sum();
                if n == 0 {
                    0.0
                } else {
                    row[i] as f64 / n as f64
                }
            })
            .collect()
    }
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub test_accuracy: f64,
    pub test_loss: f64,
    pub test_count: usize,
    pub per_class_accuracy: std::collections::BTreeMap<String, f64>,
    pub classes: Vec<String>,
    pub confusion_matrix: Vec<Vec<usize>>,
    pub parameter_count: usize,
    pub epochs: usize,
    pub steps: u64,
    pub best_val_accuracy: Option<f64>,
    pub best_step: Option<u64>,
    pub training_time_s: f64,
    pub mean_epoch_time_s: f64,
    /// The checkpoint the test metrics were computed from.
    pub checkpoint: String,
}
