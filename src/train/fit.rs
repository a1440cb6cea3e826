//! The loop: epochs, data order, the learning-rate schedule, metrics, checkpoints, progress and
//! interruption — for any `Task`. What a step computes is the task's.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};

use super::checkpoint::{self, CheckpointMeta};
use super::config::TrainConfig;
use super::metrics;
use super::run::Run;
use super::schedule;
use super::state::LoopState;
use super::task::{Task, TaskSpec};
use crate::data::batch::{Normalizer, batch_count, epoch_order, spawn_batches};
use crate::data::{AugmentConfig, ImageSet, Splits};
use crate::fsio;
use crate::progress::Progress;
use crate::run_files;
use crate::run_files::{Record, Values};

/// Set by Ctrl-C, SIGTERM or SIGHUP: the loop checkpoints and stops after the current step.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Whether this process has installed its interrupt handler.
static HANDLED: AtomicBool = AtomicBool::new(false);
/// The fovea child processes an interrupt is passed on to.
static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Whether an interrupt has come to this process (a command that trains several runs stops
/// after the one it interrupted).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Whether this process catches interrupts (and so passes them on to its fovea children).
pub fn interrupts_handled() -> bool {
    HANDLED.load(Ordering::SeqCst)
}

/// While the fovea child process `pid` runs (`running`), each interrupt this process gets is
/// passed on to it (as SIGTERM, which it handles as Ctrl-C); call again with `running = false`
/// once it has ended. Several children may run at once. Each runs in a process group of its
/// own, so a terminal's Ctrl-C reaches it this way only, once.
pub fn forward_interrupts_to(pid: u32, running: bool) {
    let pid = pid as i32;
    {
        let mut children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
        children.retain(|&c| c != pid);
        if running {
            children.push(pid);
        }
    }
    if running && interrupted() {
        signal(pid);
    }
}

fn forward() {
    let children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for pid in children {
        signal(pid);
    }
}

fn signal(pid: i32) {
    if pid > 0 {
        // SAFETY: kill(2) with a process id this process spawned and a valid signal number.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

pub fn install_interrupt_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            forward();
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond interrupt: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: stopping after this step and writing a checkpoint …");
        });
        match installed {
            Ok(()) => HANDLED.store(true, Ordering::SeqCst),
            Err(e) => eprintln!(
                "warning: cannot catch Ctrl-C or SIGTERM ({e}); an interrupt will not checkpoint"
            ),
        }
    });
}

/// How a fit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Stopped by Ctrl-C after writing a checkpoint.
    Interrupted,
    /// Stopped by the `crash_at_step` test hook, leaving the run folder as a kill would.
    Crashed,
}

/// Options that are not part of the run's config.
#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    pub quiet: bool,
    /// Test hook: stop right after this many steps without any clean-up, as `kill -9` would.
    pub crash_at_step: Option<u64>,
}

/// Everything the loop needs to know about the data and the run.
pub struct FitContext<'a> {
    pub run: &'a Run,
    pub train: &'a TrainConfig,
    pub seed: u64,
    pub augment: &'a AugmentConfig,
    pub data: &'a Splits,
    /// The images an epoch passes over: `data.train`, or for a semi-supervised kind every
    /// training image with its label withheld (`Splits::all_without_labels`).
    pub epoch_set: &'a ImageSet,
    pub normalizer: &'a Normalizer,
    /// The task's kind as configured (recorded in checkpoints).
    pub kind: &'a str,
    pub options: &'a FitOptions,
    /// Called after each epoch with every record so far (the session redraws the curves).
    pub on_epoch_end: &'a dyn Fn(&[Record]) -> Result<()>,
}

impl FitContext<'_> {
    fn steps_per_epoch(&self) -> usize {
        batch_count(self.epoch_set.len(), self.train.batch_size)
    }

    /// Each optimizer's learning rate at `step`, by name.
    fn learning_rates(&self, spec: &TaskSpec, step: u64) -> Values {
        let f = schedule::factor(self.train, step, self.steps_per_epoch());
        spec.learning_rates
            .iter()
            .map(|(name, base)| (name.to_string(), base * f))
            .collect()
    }

    /// Writes the step checkpoint, then the same bytes as `best.ckpt` when `best` is set.
    pub(crate) fn save(&self, task: &dyn Task, state: &LoopState, best: bool) -> Result<()> {
        let meta = CheckpointMeta {
            fovea_version: env!("CARGO_PKG_VERSION").into(),
            model_kind: self.kind.into(),
            classes: self.data.source.classes.clone(),
            shape: self.data.train.shape,
            normalizer: self.normalizer.clone(),
            state: state.clone(),
        };
        let bytes = checkpoint::encode(&meta, &task.save()?)?;
        // The metrics up to this step reach the disk before the checkpoint that says they were
        // written: a resume after a power cut finds every line it keeps.
        fsio::sync_file(&self.run.dir.join(run_files::METRICS))?;
        let dir = self.run.checkpoints();
        fsio::write_atomic(&dir.join(checkpoint::step_name(state.step)), &bytes)?;
        if best {
            fsio::write_atomic(&dir.join(checkpoint::BEST), &bytes)?;
        }
        checkpoint::prune(&dir, self.train.keep_last)
    }
}

/// Seconds of training across processes.
struct Clock {
    before: f64,
    start: Instant,
}

impl Clock {
    fn now(&self) -> f64 {
        self.before + self.start.elapsed().as_secs_f64()
    }
}

/// `name value` pairs for a progress or epoch line.
fn show(values: &Values, names: &[&str]) -> String {
    names
        .iter()
        .filter_map(|n| values.get(*n).map(|v| format!("{n} {v:.4}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Trains `task` from `state` to the configured number of epochs.
pub fn fit(
    ctx: &FitContext,
    task: &mut dyn Task,
    mut state: LoopState,
) -> Result<(Outcome, LoopState)> {
    let spec = task.spec();
    let clock = Clock {
        before: state.elapsed_s,
        start: Instant::now(),
    };
    let mut progress = Progress::new(ctx.options.quiet);
    while state.epoch < ctx.train.epochs {
        let epoch = run_epoch(ctx, task, &spec, &mut state, &mut progress, &clock)?;
        if let Some(outcome) = epoch.stopped {
            progress.finish_epoch();
            state.elapsed_s = clock.now();
            return Ok((outcome, state));
        }
        end_epoch(ctx, task, &spec, &mut state, &mut progress, &clock, &epoch)?;
    }
    state.elapsed_s = clock.now();
    Ok((Outcome::Completed, state))
}

/// What the batches of one epoch (or of its rest, after a resume) did.
struct EpochRun {
    stopped: Option<Outcome>,
    seconds: f64,
    images: usize,
}

/// The epoch's remaining batches: a step each, window records, step checkpoints, interruption.
fn run_epoch(
    ctx: &FitContext,
    task: &mut dyn Task,
    spec: &TaskSpec,
    state: &mut LoopState,
    progress: &mut Progress,
    clock: &Clock,
) -> Result<EpochRun> {
    let t = ctx.train;
    let spe = ctx.steps_per_epoch();
    let start = Instant::now();
    let seen_before = state.epoch_seen;
    let mut window_start = Instant::now();
    progress.start_epoch(state.epoch + 1, t.epochs, spe, state.batch);
    let order = epoch_order(ctx.epoch_set.len(), ctx.seed, state.epoch);
    let augment = ctx.augment.is_on().then(|| ctx.augment.clone());
    let stopped = std::thread::scope(|scope| -> Result<Option<Outcome>> {
        let batches = spawn_batches(
            scope,
            ctx.epoch_set,
            order,
            state.batch,
            t.batch_size,
            ctx.normalizer,
            augment,
            ctx.seed,
            state.epoch,
        );
        for batch in batches {
            let index = batch.index;
            let factor = schedule::factor(t, state.step, spe);
            let stats = task.step(batch, factor, state.step)?;
            let means: Values = stats
                .sums
                .iter()
                .map(|&(k, v)| (k.to_string(), v / stats.count.max(1) as f64))
                .collect();
            if let Err((name, value)) = metrics::check_finite(&means) {
                let lrs = ctx.learning_rates(spec, state.step);
                diverged(ctx, state, &name, value, &lrs)?;
            }
            state.step += 1;
            state.batch = index + 1;
            state.accumulate(stats.count, &stats.sums);
            let images = state.epoch_seen - seen_before;
            let ips = images as f64 / start.elapsed().as_secs_f64().max(1e-9);
            progress.update(
                state.batch,
                spe,
                &show(&state.epoch_means(), &spec.train),
                ips,
            );
            if t.log_every > 0 && state.step.is_multiple_of(t.log_every as u64) {
                log_window(ctx, spec, state, window_start, clock)?;
                window_start = Instant::now();
            }
            let interrupted = INTERRUPTED.load(Ordering::SeqCst);
            if interrupted
                || (t.checkpoint_every > 0 && state.step.is_multiple_of(t.checkpoint_every as u64))
            {
                let mut saved = state.clone();
                saved.elapsed_s = clock.now();
                ctx.save(task, &saved, false)?;
            }
            if interrupted {
                return Ok(Some(Outcome::Interrupted));
            }
            if ctx.options.crash_at_step == Some(state.step) {
                return Ok(Some(Outcome::Crashed));
            }
        }
        Ok(None)
    })?;
    Ok(EpochRun {
        stopped,
        seconds: start.elapsed().as_secs_f64(),
        images: state.epoch_seen - seen_before,
    })
}

/// Appends the training record of the logging window that ends at this step, and starts a new one.
fn log_window(
    ctx: &FitContext,
    spec: &TaskSpec,
    state: &mut LoopState,
    window_start: Instant,
    clock: &Clock,
) -> Result<()> {
    let (mut values, seen) = state.take_window();
    values.extend(ctx.learning_rates(spec, state.step - 1));
    let record = Record {
        epoch: state.epoch + 1,
        step: state.step,
        split: "train".into(),
        scope: "step".into(),
        values,
        images_per_sec: seen as f64 / window_start.elapsed().as_secs_f64().max(1e-9),
        elapsed_s: clock.now(),
    };
    metrics::append(&ctx.run.dir, &record)
}

/// Stops a run whose metric left the finite numbers, naming the last good checkpoint.
fn diverged(
    ctx: &FitContext,
    state: &LoopState,
    name: &str,
    value: f64,
    lrs: &Values,
) -> Result<()> {
    let kept = match checkpoint::list(&ctx.run.checkpoints())?.first() {
        Some((_, path)) => format!("the last good checkpoint is {}", path.display()),
        None => "no checkpoint had been written yet".to_string(),
    };
    let lrs: Vec<String> = lrs.iter().map(|(k, v)| format!("{k} {v:.3e}")).collect();
    bail!(
        "{name} became {value} at step {} (epoch {}, {}); stopped without saving ({kept}). \
         Try a lower train.lr or set train.grad_clip",
        state.step + 1,
        state.epoch + 1,
        lrs.join(", ")
    )
}

/// End of an epoch: the epoch's records, validation, the best checkpoint, the epoch checkpoint.
fn end_epoch(
    ctx: &FitContext,
    task: &mut dyn Task,
    spec: &TaskSpec,
    state: &mut LoopState,
    progress: &mut Progress,
    clock: &Clock,
    epoch: &EpochRun,
) -> Result<()> {
    let ips = epoch.images as f64 / epoch.seconds.max(1e-9);
    let lrs = ctx.learning_rates(spec, state.step.saturating_sub(1));
    let mut record = Record {
        epoch: state.epoch + 1,
        step: state.step,
        split: "train".into(),
        scope: "epoch".into(),
        values: state.epoch_means(),
        images_per_sec: ips,
        elapsed_s: clock.now(),
    };
    let mut line = format!(
        "epoch {}/{}  train {}",
        state.epoch + 1,
        ctx.train.epochs,
        show(&record.values, &spec.train)
    );
    record.values.extend(lrs.clone());
    metrics::append(&ctx.run.dir, &record)?;
    let mut improved = false;
    let done = state.epoch + 1;
    let validate = done.is_multiple_of(ctx.train.eval_every) || done == ctx.train.epochs;
    if validate && !ctx.data.val.is_empty() {
        let val = task.evaluate(&ctx.data.val, ctx.normalizer, ctx.train.eval_batch_size)?;
        if let Err((name, value)) = metrics::check_finite(&val.metrics) {
            bail!(
                "validation {name} became {value} after epoch {}; stopped without saving. \
                 Try a lower train.lr or set train.grad_clip",
                state.epoch + 1
            );
        }
        line.push_str(&format!("  val {}", show(&val.metrics, &spec.eval)));
        let (select, goal) = spec.select;
        let Some(&value) = val.metrics.get(select) else {
            bail!(
                "the task's evaluation does not report `{select}`, which picks the best checkpoint"
            );
        };
        improved = goal.improves(value, state.best);
        if improved {
            state.best = Some(value);
            state.best_step = Some(state.step);
        }
        record.split = "val".into();
        record.values = val.metrics;
        record.values.extend(lrs);
        metrics::append(&ctx.run.dir, &record)?;
    }
    line.push_str(&format!("  {ips:.0} img/s  {:.1}s", epoch.seconds));
    progress.finish_epoch();
    progress.line(&line);

    state.next_epoch(epoch.seconds);
    state.elapsed_s = clock.now();
    ctx.save(task, state, improved)?;
    let records = run_files::read_metrics(&ctx.run.dir)?;
    metrics::write_csv(&ctx.run.dir, &records, spec)?;
    task.epoch_end(state.epoch, &ctx.run.dir)?;
    (ctx.on_epoch_end)(&records)
}

/// Brings a run folder back to a checkpoint's `state` before `fit` continues from it: drops the
/// metrics written after it and makes `best.ckpt` hold the weights of its best step. Returns a
/// note for the user when `best.ckpt` had to be repaired.
pub fn rewind(run: &Run, state: &LoopState) -> Result<Option<String>> {
    metrics::rewind(&run.dir, state)?;
    checkpoint::reconcile_best(&run.checkpoints(), state.best_step)
}
