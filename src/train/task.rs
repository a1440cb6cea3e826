//! What a task is to the loop: one training step, an evaluation, its state as named parts, and
//! a declaration of the metrics it reports.
//!
//! The loop (`fit`) knows nothing of what a step computes. A task declares its metrics by name —
//! the keys of `metrics.jsonl`, `metrics.csv`, the progress line and the curves — which evaluation
//! metric picks `best.ckpt` and in which direction, and one base learning rate per optimizer.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::data::ImageSet;
use crate::data::batch::{Batch, Normalizer};
use crate::run_files::{Curve, Values};

/// A named blob of a checkpoint: one model's or one optimizer's record.
pub type Part = (String, Vec<u8>);

/// Which way an evaluation metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Higher is better (accuracy, PSNR).
    Max,
    /// Lower is better (loss, FID).
    Min,
}

impl Goal {
    /// Whether `value` beats `best` (anything beats no best yet).
    pub fn improves(self, value: f64, best: Option<f64>) -> bool {
        match (self, best) {
            (_, None) => true,
            (Goal::Max, Some(b)) => value > b,
            (Goal::Min, Some(b)) => value < b,
        }
    }
}

/// What a task reports and how its best checkpoint is chosen.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// Training metrics, averaged per image over logging windows and epochs. Every one must stay
    /// finite: a NaN or infinity stops the run.
    pub train: Vec<&'static str>,
    /// Metrics an evaluation reports, on the validation and the test set.
    pub eval: Vec<&'static str>,
    /// The evaluation metric that picks `best.ckpt`, and which way is better.
    pub select: (&'static str, Goal),
    /// Each optimizer's name (its key in the metrics) and base learning rate; the loop's schedule
    /// factor multiplies each.
    pub learning_rates: Vec<(&'static str, f64)>,
    /// The curves drawn from `metrics.jsonl`.
    pub curves: Vec<Curve>,
}

/// What one training step reports: per metric, the sum of its per-image values over the batch
/// (a mean loss × the batch size, the count of correct predictions), and the batch size. The
/// loop divides by the images seen, so windows and epochs of any length average exactly.
#[derive(Debug, Clone, Default)]
pub struct StepStats {
    pub count: usize,
    pub sums: Vec<(&'static str, f64)>,
}

/// An evaluation on a set: its metrics, and task-specific details for `summary.json` (e.g. a
/// classifier's confusion matrix).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub count: usize,
    pub metrics: Values,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// A trainable thing. The loop calls `step` per batch, `evaluate` at epoch ends and `save` /
/// `load` at checkpoints; a task may own several models and optimizers.
pub trait Task {
    /// The task's metrics and optimizers (constant for a task).
    fn spec(&self) -> TaskSpec;
    /// One optimization step on `batch`. `lr_factor` is the shared schedule's factor (1 at the
    /// peak), to multiply into each optimizer's base learning rate; `step` is the global step
    /// number, from which a task seeds anything random it draws (dropout, noise), so that a
    /// resumed run draws the same as an uninterrupted one.
    fn step(&mut self, batch: Batch, lr_factor: f64, step: u64) -> Result<StepStats>;
    /// Metrics on a whole set, in evaluation mode.
    fn evaluate(
        &self,
        set: &ImageSet,
        normalizer: &Normalizer,
        batch_size: usize,
    ) -> Result<Report>;
    /// Inference on one batch in evaluation mode (what `fovea bench` times).
    fn infer(&self, batch: Batch) -> Result<()>;
    /// Every model and optimizer record, by name.
    fn save(&self) -> Result<Vec<Part>>;
    /// Restores what `save` wrote.
    fn load(&mut self, parts: Vec<Part>) -> Result<()>;
    fn parameter_count(&self) -> usize;
    /// Called at each epoch's end (after its checkpoint): pictures of the weights now (e.g. a
    /// generator's samples).
    fn epoch_end(&self, _epoch: usize, _run_dir: &Path) -> Result<()> {
        Ok(())
    }
    /// Pictures of a test report written into the run folder (e.g. a confusion matrix).
    fn write_figures(&self, _test: &Report, _run_dir: &Path) -> Result<()> {
        Ok(())
    }
}

/// The named part of a checkpoint, or an error naming what is missing.
pub fn part<'a>(parts: &'a [Part], name: &str) -> Result<&'a [u8]> {
    parts
        .iter()
        .find(|p| p.0 == name)
        .map(|p| p.1.as_slice())
        .ok_or_else(|| anyhow::anyhow!("checkpoint has no `{name}` part"))
}
