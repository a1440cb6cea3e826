//! The loop's position and running totals: everything besides the task that a checkpoint must
//! hold to continue exactly.

use serde::{Deserialize, Serialize};

use crate::run_files::Values;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoopState {
    /// 0-based epoch in progress (== epochs when training is done); also the number of epochs done.
    pub epoch: usize,
    /// Next batch within the epoch.
    pub batch: usize,
    /// Optimizer steps done.
    pub step: u64,
    /// Per training metric, the sum over the images of this epoch so far.
    pub epoch_sums: Values,
    pub epoch_seen: usize,
    /// The same since the last logging step.
    pub window_sums: Values,
    pub window_seen: usize,
    /// The best value of the task's selection metric on validation, and the step it came at.
    pub best: Option<f64>,
    pub best_step: Option<u64>,
    /// Seconds of training before this process started.
    pub elapsed_s: f64,
    pub epoch_times_s: Vec<f64>,
}

impl LoopState {
    /// Adds one step's per-metric sums over `count` images to the epoch's and the window's.
    pub fn accumulate(&mut self, count: usize, sums: &[(&'static str, f64)]) {
        for &(name, v) in sums {
            *self.epoch_sums.entry(name.to_string()).or_default() += v;
            *self.window_sums.entry(name.to_string()).or_default() += v;
        }
        self.epoch_seen += count;
        self.window_seen += count;
    }

    /// Per-image means of the epoch so far.
    pub fn epoch_means(&self) -> Values {
        means(&self.epoch_sums, self.epoch_seen)
    }

    /// Per-image means since the last logging step; starts a new window.
    pub fn take_window(&mut self) -> (Values, usize) {
        let out = (means(&self.window_sums, self.window_seen), self.window_seen);
        self.window_sums.clear();
        self.window_seen = 0;
        out
    }

    /// Moves to the start of the next epoch.
    pub fn next_epoch(&mut self, epoch_time_s: f64) {
        self.epoch_times_s.push(epoch_time_s);
        self.epoch += 1;
        self.batch = 0;
        self.epoch_sums.clear();
        self.epoch_seen = 0;
    }

    pub fn mean_epoch_time_s(&self) -> f64 {
        if self.epoch_times_s.is_empty() {
            0.0
        } else {
            self.epoch_times_s.iter().sum::<f64>() / self.epoch_times_s.len() as f64
        }
    }
}

fn means(sums: &Values, seen: usize) -> Values {
    let n = seen.max(1) as f64;
    sums.iter().map(|(k, v)| (k.clone(), v / n)).collect()
}
