//! Writing a run's metrics: `metrics.jsonl` (one record per logging step and per epoch and
//! split, appended), cut back to a checkpoint on resume, and `metrics.csv` (one row per epoch,
//! derived from the METRICS). Records are keyed by the task's metric names.

use std::path::Path;

use anyhow::Result;

use super::state::LoopState;
use super::task::TaskSpec;
use crate::fsio;
use crate::run_files::{METRICS, METRICS_CSV, Record, Values, read_metrics};

pub fn append(run: &Path, record: &Record) -> Result<()> {
    fsio::append_line(&run.join(METRICS), &serde_json::to_string(record)?)
}

/// Drops the records of work a crash threw away: everything after the checkpoint's step, and
/// the epoch-end records of an epoch the checkpoint had not finished (written just before a
/// crash at the epoch's last step). Rewrites the file atomically; a malformed line stops it.
pub fn rewind(run: &Path, state: &LoopState) -> Result<()> {
    let path = run.join(METRICS);
    if !path.exists() {
        return Ok(());
    }
    let keep: Vec<Record> = read_metrics(run)?
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
    fsio::write_atomic(&run.join(METRICS_CSV), out.as_bytes())
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
        let steps: Vec<(u64, String)> = read_metrics(dir.path())
            .unwrap()
            .into_iter()
            .map(|r| (r.step, r.scope))
            .collect();
        assert_eq!(steps, vec![(5, "step".into()), (10, "step".into())]);
    }
}
