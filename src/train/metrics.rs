//! The metrics a run writes: `metrics.jsonl` (one object per logging step and per epoch and
//! split) and `metrics.csv` (one row per epoch, derived from the JSONL). Records are keyed by the
//! task's metric names.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::state::LoopState;
use super::task::{TaskSpec, Values};
use crate::fsio;

pub const JSONL: &str = "metrics.jsonl";
pub const CSV: &str = "metrics.csv";

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

pub fn append(run: &Path, record: &Record) -> Result<()> {
    fsio::append_line(&run.join(JSONL), &serde_json::to_string(record)?)
}

/// Every record of a run. A line that is not a record is an error that names its line: a
/// metrics file with a line fovea cannot read is not one it can silently trust or rewrite.
pub fn read_all(run: &Path) -> Result<Vec<Record>> {
    let path = run.join(JSONL);
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

/// Drops the records of work a crash threw away: everything after the checkpoint's step, and
/// the epoch-end records of an epoch the checkpoint had not finished (written just before a
/// crash at the epoch's last step). Rewrites the file atomically; a malformed line stops it.
pub fn rewind(run: &Path, state: &LoopState) -> Result<()> {
    let path = run.join(JSONL);
    if !path.exists() {
        return Ok(());
    }
    let keep: Vec<Record> = read_all(run)?
        .into_iter()
        .filter(|r| r.step <= state.step && (r.scope != "epoch" || r.epoch <= state.epoch))
        .collect();
    let mut text = String::new();
    for r in &keep {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    fsio::write_atomic(&path, text.as_bytes())
}

/// Rewrites `metrics.csv` from the epoch records: one column per training metric, validation
/// metric and learning rate of the task.
pub fn write_csv(run: &Path, records: &[Record], spec: &TaskSpec) -> Result<()> {
    let mut header = vec!["epoch".to_string(), "step".to_string()];
    header.extend(spec.train.iter().map(|m| format!("train_{m}")));
    header.extend(spec.eval.iter().map(|m| format!("val_{m}")));
    header.extend(spec.learning_rates.iter().map(|(n, _)| n.to_string()));
    header.extend(["images_per_sec".into(), "elapsed_s".into()]);
    let mut out = header.join(",") + "\n";
    let epochs = records
        .iter()
        .filter(|r| r.scope == "epoch")
        .map(|r| r.epoch)
        .max()
        .unwrap_or(0);
    let cell = |r: Option<&Record>, name: &str, fmt: fn(f64) -> String| {
        r.and_then(|r| r.get(name)).map(fmt).unwrap_or_default()
    };
    for e in 1..=epochs {
        let find = |split: &str| {
            records
                .iter()
                .rev()
                .find(|r| r.scope == "epoch" && r.epoch == e && r.split == split)
        };
        let Some(train) = find("train") else { continue };
        let val = find("val");
        let mut row = vec![e.to_string(), train.step.to_string()];
        row.extend(
            spec.train
                .iter()
                .map(|m| cell(Some(train), m, |v| format!("{v:.6}"))),
        );
        row.extend(
            spec.eval
                .iter()
                .map(|m| cell(val, m, |v| format!("{v:.6}"))),
        );
        row.extend(
            spec.learning_rates
                .iter()
                .map(|(n, _)| cell(Some(train), n, |v| format!("{v:.6e}"))),
        );
        row.push(format!("{:.1}", train.images_per_sec));
        row.push(format!("{:.1}", train.elapsed_s));
        out.push_str(&row.join(","));
        out.push('\n');
    }
    fsio::write_atomic(&run.join(CSV), out.as_bytes())
}

/// Checks that every value is finite; the error names the first that is not.
pub fn check_finite(values: &Values) -> std::result::Result<(), (String, f64)> {
    match values.iter().find(|(_, v)| !v.is_finite()) {
        Some((k, v)) => Err((k.clone(), *v)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, step: u64, split: &str, scope: &str, loss: f64) -> Record {
        Record {
            epoch,
            step,
            split: split.into(),
            scope: scope.into(),
            values: [("loss".to_string(), loss)].into(),
            images_per_sec: 1.0,
            elapsed_s: 1.0,
        }
    }

    #[test]
    fn records_round_trip_with_their_named_metrics() {
        let r = record(2, 30, "val", "epoch", 0.25);
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"loss\":0.25"), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }

    #[test]
    fn rewind_drops_what_the_checkpoint_did_not_reach() {
        let dir = tempfile::tempdir().unwrap();
        for r in [
            record(1, 5, "train", "step", 1.0),
            record(1, 10, "train", "step", 0.9),
            record(1, 10, "train", "epoch", 0.95),
            record(1, 10, "val", "epoch", 0.8),
            record(2, 15, "train", "step", 0.7),
        ] {
            append(dir.path(), &r).unwrap();
        }
        // A checkpoint at step 10 taken before epoch 1 ended.
        let state = LoopState {
            epoch: 0,
            batch: 10,
            step: 10,
            ..Default::default()
        };
        rewind(dir.path(), &state).unwrap();
        let steps: Vec<(u64, String)> = read_all(dir.path())
            .unwrap()
            .into_iter()
            .map(|r| (r.step, r.scope))
            .collect();
        assert_eq!(steps, vec![(5, "step".into()), (10, "step".into())]);
    }
}
