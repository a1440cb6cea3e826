//! Training: one loop for every kind of step. The loop owns epochs, data order, the LR schedule,
//! checkpoints, metrics, progress and interruption; a `Task` owns what happens in one step.

pub mod checkpoint;
pub mod classifier;
pub mod metrics;
pub mod optim;
pub mod progress;
pub mod run;
pub mod schedule;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::data::batch::{Batch, Normalizer, batch_count, epoch_order, spawn_batches};
use crate::data::{ImageSet, InputShape, Splits};
use checkpoint::Part;
use metrics::{Evaluation, Record};
use progress::Progress;
use run::{Run, RunInfo};

/// What one optimizer step reports.
pub struct StepStats {
    /// Mean loss over the batch.
    pub loss: f64,
    pub correct: usize,
    pub count: usize,
}

/// A trainable thing: the loop calls `step` per batch and saves/loads it at checkpoints.
pub trait Task {
    /// One optimizer step on `batch` at learning rate `lr`; `step` is the global step number.
    fn step(&mut self, batch: Batch, lr: f64, step: u64) -> Result<StepStats>;
    fn evaluate(
        &self,
        set: &ImageSet,
        normalizer: &Normalizer,
        batch_size: usize,
    ) -> Result<Evaluation>;
    fn save(&self) -> Result<Vec<Part>>;
    fn load(&mut self, parts: Vec<Part>) -> Result<()>;
    fn parameter_count(&self) -> usize;
}

/// The loop's position and running totals: everything besides the task needed to continue exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoopState {
    /// 0-based epoch in progress (== epochs when training is done).
    pub epoch: usize,
    /// Next batch within the epoch.
    pub batch: usize,
    /// Optimizer steps done.
    pub step: u64,
    pub epoch_loss_sum: f64,
    pub epoch_correct: usize,
    pub epoch_seen: usize,
    pub window_loss_sum: f64,
    pub window_correct: usize,
    pub window_seen: usize,
    pub best_val_accuracy: Option<f64>,
    pub best_step: Option<u64>,
    /// Seconds of training before this process started.
    pub elapsed_s: f64,
    pub epoch_times_s: Vec<f64>,
}

/// What a checkpoint records besides the task's parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub fovea_version: String,
    pub model_kind: String,
    pub classes: Vec<String>,
    pub shape: InputShape,
    pub normalizer: Normalizer,
    pub state: LoopState,
}

/// Set by Ctrl-C: the loop checkpoints and stops at the next step.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler (once per process).
pub fn install_interrupt_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond interrupt: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: stopping after this step and writing a checkpoint …");
        });
    });
}

/// How a fit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Interrupted,
}

/// Options that are not part of the run's config.
#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    pub quiet: bool,
    /// Test hook: exit the process abruptly (as kill -9 would) after this many steps.
    pub crash_at_step: Option<u64>,
}

/// Everything the loop needs to know about the data and the run.
pub struct FitContext<'a> {
    pub run: &'a Run,
    pub config: &'a Config,
    pub data: &'a Splits,
    pub normalizer: &'a Normalizer,
    pub options: &'a FitOptions,
}

impl FitContext<'_> {
    fn meta(&self, state: &LoopState) -> CheckpointMeta {
        CheckpointMeta {
            fovea_version: env!("CARGO_PKG_VERSION").into(),
            model_kind: self.config.model.kind().into(),
            classes: self.data.source.classes.clone(),
            shape: self.data.train.shape,
            normalizer: self.normalizer.clone(),
            state: state.clone(),
        }
    }

    /// Writes the step checkpoint, and the same bytes as `best.ckpt` when `best` is set.
    fn save(&self, task: &impl Task, state: &LoopState, best: bool) -> Result<()> {
        let bytes = checkpoint::encode(&self.meta(state), &task.save()?)?;
        let dir = self.run.checkpoints();
        checkpoint::write_atomic(&dir.join(checkpoint::step_name(state.step)), &bytes)?;
        if best {
            checkpoint::write_atomic(&dir.join(checkpoint::BEST), &bytes)?;
        }
        checkpoint::prune(&dir, self.config.train.keep_last)
    }
}

/// Trains `task` from `state` to the configured number of epochs.
pub fn fit(
    ctx: &FitContext,
    task: &mut impl Task,
    mut state: LoopState,
) -> Result<(Outcome, LoopState)> {
    let t = &ctx.config.train;
    let train = &ctx.data.train;
    let spe = batch_count(train.len(), t.batch_size);
    let session = Instant::now();
    let base_elapsed = state.elapsed_s;
    let elapsed = |s: &Instant| base_elapsed + s.elapsed().as_secs_f64();
    let mut progress = Progress::new(ctx.options.quiet);
    let augment = (ctx.config.data.augment.shift > 0 || ctx.config.data.augment.flip)
        .then(|| ctx.config.data.augment.clone());

    while state.epoch < t.epochs {
        let epoch_start = Instant::now();
        let epoch_done_before = state.epoch_seen;
        let mut window_start = Instant::now();
        progress.start_epoch(state.epoch + 1, t.epochs, spe, state.batch);
        let order = epoch_order(train.len(), ctx.config.seed, state.epoch);
        let stopped = std::thread::scope(|scope| -> Result<bool> {
            let batches = spawn_batches(
                scope,
                train,
                order,
                state.batch,
                t.batch_size,
                ctx.normalizer,
                augment.clone(),
                ctx.config.seed,
                state.epoch,
            );
            for batch in batches {
                let lr = schedule::lr_at(t, state.step, spe);
                let index = batch.index;
                let stats = task.step(batch, lr, state.step)?;
                if !stats.loss.is_finite() {
                    let kept = match checkpoint::list(&ctx.run.checkpoints())?.first() {
                        Some((_, path)) => {
                            format!("the last good checkpoint is {}", path.display())
                        }
                        None => "no checkpoint had been written yet".to_string(),
                    };
                    bail!(
                        "loss became {} at step {} (epoch {}, lr {lr:.3e}); stopped without saving ({kept}). \
                         Try a lower train.lr or set train.grad_clip",
                        stats.loss,
                        state.step + 1,
                        state.epoch + 1
                    );
                }
                state.step += 1;
                state.batch = index + 1;
                let loss_sum = stats.loss * stats.count as f64;
                state.epoch_loss_sum += loss_sum;
                state.epoch_correct += stats.correct;
                state.epoch_seen += stats.count;
                state.window_loss_sum += loss_sum;
                state.window_correct += stats.correct;
                state.window_seen += stats.count;
                let ips = (state.epoch_seen - epoch_done_before) as f64
                    / epoch_start.elapsed().as_secs_f64().max(1e-9);
                progress.update(
                    state.batch,
                    spe,
                    state.epoch_loss_sum / state.epoch_seen as f64,
                    state.epoch_correct as f64 / state.epoch_seen as f64,
                    ips,
                );
                if t.log_every > 0 && state.step % t.log_every as u64 == 0 {
                    let seen = state.window_seen.max(1) as f64;
                    metrics::append(
                        &ctx.run.dir,
                        &Record {
                            epoch: state.epoch + 1,
                            step: state.step,
                            split: "train".into(),
                            scope: "step".into(),
                            loss: state.window_loss_sum / seen,
                            accuracy: state.window_correct as f64 / seen,
                            lr,
                            images_per_sec: state.window_seen as f64
                                / window_start.elapsed().as_secs_f64().max(1e-9),
                            elapsed_s: elapsed(&session),
                        },
                    )?;
                    (
                        state.window_loss_sum,
                        state.window_correct,
                        state.window_seen,
                    ) = (0.0, 0, 0);
                    window_start = Instant::now();
                }
                let interrupted = INTERRUPTED.load(Ordering::SeqCst);
                if interrupted
                    || (t.checkpoint_every > 0 && state.step % t.checkpoint_every as u64 == 0)
                {
                    let mut saved = state.clone();
                    saved.elapsed_s = elapsed(&session);
                    ctx.save(task, &saved, false)?;
                }
                if interrupted {
                    return Ok(true);
                }
                if ctx.options.crash_at_step == Some(state.step) {
                    std::process::exit(137);
                }
            }
            Ok(false)
        })?;
        if stopped {
            progress.finish_epoch();
            state.elapsed_s = elapsed(&session);
            return Ok((Outcome::Interrupted, state));
        }

        // End of epoch: validation, records, best checkpoint, epoch checkpoint.
        let epoch_time = epoch_start.elapsed().as_secs_f64();
        let seen = state.epoch_seen.max(1) as f64;
        let ips = (state.epoch_seen - epoch_done_before) as f64 / epoch_time.max(1e-9);
        let lr = schedule::lr_at(t, state.step.saturating_sub(1), spe);
        let now = elapsed(&session);
        let mut record = Record {
            epoch: state.epoch + 1,
            step: state.step,
            split: "train".into(),
            scope: "epoch".into(),
            loss: state.epoch_loss_sum / seen,
            accuracy: state.epoch_correct as f64 / seen,
            lr,
            images_per_sec: ips,
            elapsed_s: now,
        };
        metrics::append(&ctx.run.dir, &record)?;
        let mut line = format!(
            "epoch {}/{}  train loss {:.4} acc {:.4}",
            state.epoch + 1,
            t.epochs,
            record.loss,
            record.accuracy
        );
        let mut improved = false;
        if !ctx.data.val.is_empty() {
            let val = task.evaluate(&ctx.data.val, ctx.normalizer, t.eval_batch_size)?;
            record.split = "val".into();
            record.loss = val.loss;
            record.accuracy = val.accuracy;
            metrics::append(&ctx.run.dir, &record)?;
            line.push_str(&format!(
                "  val loss {:.4} acc {:.4}",
                val.loss, val.accuracy
            ));
            improved = state.best_val_accuracy.is_none_or(|b| val.accuracy > b);
            if improved {
                state.best_val_accuracy = Some(val.accuracy);
                state.best_step = Some(state.step);
            }
        }
        line.push_str(&format!("  {ips:.0} img/s  {epoch_time:.1}s"));
        progress.finish_epoch();
        progress.line(&line);

        state.epoch_times_s.push(epoch_time);
        state.epoch += 1;
        state.batch = 0;
        (state.epoch_loss_sum, state.epoch_correct, state.epoch_seen) = (0.0, 0, 0);
        state.elapsed_s = elapsed(&session);
        ctx.save(task, &state, improved)?;
        let records = metrics::read_all(&ctx.run.dir)?;
        metrics::write_csv(&ctx.run.dir, &records)?;
        crate::report::plots::curves_from_metrics(&ctx.run.dir, &records, spe)?;
    }
    state.elapsed_s = base_elapsed + session.elapsed().as_secs_f64();
    Ok((Outcome::Completed, state))
}

/// Writes `summary.json` and `confusion.png` from the test set.
pub fn write_summary(
    ctx: &FitContext,
    task: &impl Task,
    state: &LoopState,
    checkpoint: &str,
) -> Result<metrics::Summary> {
    let test = task.evaluate(
        &ctx.data.test,
        ctx.normalizer,
        ctx.config.train.eval_batch_size,
    )?;
    let classes = &ctx.data.source.classes;
    let summary = metrics::Summary {
        test_accuracy: test.accuracy,
        test_loss: test.loss,
        test_count: test.count,
        per_class_accuracy: classes
            .iter()
            .cloned()
            .zip(test.per_class_accuracy())
            .collect(),
        classes: classes.clone(),
        confusion_matrix: test.confusion.clone(),
        parameter_count: task.parameter_count(),
        epochs: state.epoch,
        steps: state.step,
        best_val_accuracy: state.best_val_accuracy,
        best_step: state.best_step,
        training_time_s: state.elapsed_s,
        mean_epoch_time_s: if state.epoch_times_s.is_empty() {
            0.0
        } else {
            state.epoch_times_s.iter().sum::<f64>() / state.epoch_times_s.len() as f64
        },
        checkpoint: checkpoint.to_string(),
    };
    ctx.run.write_json(metrics::SUMMARY, &summary)?;
    crate::report::plots::confusion(
        &ctx.run.dir.join(crate::report::plots::CONFUSION),
        &test.confusion,
        classes,
        &format!(
            "Test confusion matrix — accuracy {:.4} ({} images)",
            test.accuracy, test.count
        ),
    )?;
    Ok(summary)
}

/// Updates `run.json` (status, end time).
pub fn finish_run_info(run: &Run, info: &mut RunInfo, status: &str) -> Result<()> {
    info.status = status.to_string();
    info.ended = Some(run::now());
    run.write_json(run::RUN_JSON, info)
}

/// Reads `run.json` of a run folder.
pub fn read_run_info(dir: &Path) -> Result<RunInfo> {
    let path = dir.join(run::RUN_JSON);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid run record", path.display()))
}
