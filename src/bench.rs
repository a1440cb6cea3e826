//! `fovea bench`: training and inference throughput of a task on a backend, on in-memory data,
//! written to `bench.json`.
//!
//! One training image = forward + backward + optimizer step. Batches are prepared once before
//! timing, so the numbers measure the model and the backend, not the data path. Each figure is
//! the median of `repeats` timed rounds after a warm-up.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::config::{self, Config};
use crate::data::batch::{Batch, Normalizer, make_batch};
use crate::data::{self, ImageSet};
use crate::device::{self, BackendKind};
use crate::fsio;
use crate::models::ModelConfig;
use crate::models::kernel_svm::KernelSvmConfig;
use crate::session;
use crate::tasks::kernel_svm;
use crate::train::Task;
use crate::train::run;

pub struct BenchArgs {
    pub config: Option<PathBuf>,
    pub overrides: Vec<String>,
    pub backend: Option<BackendKind>,
    pub steps: usize,
    pub repeats: usize,
    pub warmup: usize,
    pub infer_batch: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub model: String,
    pub backend: String,
    pub threads: usize,
    pub batch_size: usize,
    pub infer_batch_size: usize,
    pub input: String,
    pub parameters: usize,
    pub train_images_per_sec: f64,
    pub infer_images_per_sec: f64,
    pub train_rounds: Vec<f64>,
    pub infer_rounds: Vec<f64>,
    pub steps_per_round: usize,
    pub repeats: usize,
    pub peak_rss_mib: Option<f64>,
    pub fovea_version: String,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// `count` batches of `size` images cycling through `set`.
fn batches(set: &ImageSet, normalizer: &Normalizer, size: usize, count: usize) -> Vec<Batch> {
    let order: Vec<usize> = (0..count * size).map(|i| i % set.len()).collect();
    let tables = normalizer.tables();
    order
        .chunks(size)
        .enumerate()
        .map(|(i, c)| make_batch(set, c, &tables, None, i))
        .collect()
}

/// Runs the benchmark the arguments describe.
pub fn run(args: BenchArgs) -> Result<BenchResult> {
    if args.steps == 0 || args.repeats == 0 || args.infer_batch == 0 {
        bail!("--steps, --repeats and --infer-batch must be at least 1");
    }
    let mut overrides = args.overrides.clone();
    if let Some(b) = args.backend {
        overrides.push(format!("backend=\"{b}\""));
    }
    let config: Config = config::load(args.config.as_deref(), &overrides)?;
    let device = device::open(config.backend)?;
    // Real images, in memory: the built-in sample unless the config names another dataset.
    let data = data::load(&config.data, config.seed)?;
    let set = &data.train;
    let normalizer = Normalizer::fit(set);
    let mut task = session::build_task(&config, &data, &normalizer, false, &device)?;
    let train_rounds = match &config.model {
        // Fitted in one piece: a round is one whole fit of its subset.
        ModelConfig::KernelSvm(k) => {
            time_kernel_fit(k, set, &normalizer, data.source.classes.len(), &args)?
        }
        _ => time_training(task.as_mut(), set, &normalizer, &config, &args)?,
    };
    let infer_rounds = time_inference(task.as_ref(), set, &normalizer, &args)?;
    Ok(BenchResult {
        model: config.model.kind().into(),
        backend: config.backend.to_string(),
        threads: run::threads(),
        batch_size: config.train.batch_size,
        infer_batch_size: args.infer_batch,
        input: set.shape.to_string(),
        parameters: task.parameter_count(),
        train_images_per_sec: median(&train_rounds),
        infer_images_per_sec: median(&infer_rounds),
        train_rounds,
        infer_rounds,
        steps_per_round: args.steps,
        repeats: args.repeats,
        peak_rss_mib: run::peak_rss_mib(),
        fovea_version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Images per second of training, per timed round (after an untimed warm-up).
fn time_training(
    task: &mut dyn Task,
    set: &ImageSet,
    normalizer: &Normalizer,
    config: &Config,
    args: &BenchArgs,
) -> Result<Vec<f64>> {
    let bs = config.train.batch_size;
    let mut step = 0u64;
    let mut round = |n: usize| -> Result<f64> {
        let prepared = batches(set, normalizer, bs, n);
        let start = Instant::now();
        for b in prepared {
            task.step(b, 1.0, step)?;
            step += 1;
        }
        Ok((n * bs) as f64 / start.elapsed().as_secs_f64())
    };
    round(args.warmup.max(1))?;
    (0..args.repeats).map(|_| round(args.steps)).collect()
}

/// Images per second of the exact kernel SVM's whole fit on its subset (of the bench images),
/// per round: every round fits every class, so no warm-up round is run.
fn time_kernel_fit(
    cfg: &KernelSvmConfig,
    set: &ImageSet,
    normalizer: &Normalizer,
    classes: usize,
    args: &BenchArgs,
) -> Result<Vec<f64>> {
    let n = cfg.subset.min(set.len());
    let batch = batches(set, normalizer, n, 1).pop().expect("one batch");
    let labels: Vec<u32> = batch.labels.iter().map(|&y| y as u32).collect();
    let threads = run::threads().clamp(1, classes);
    (0..args.repeats)
        .map(|_| {
            let start = Instant::now();
            kernel_svm::solve(
                cfg,
                &batch.images,
                set.shape.pixels(),
                &labels,
                classes,
                threads,
                &|_, _, _| {},
            )?
            .context("interrupted")?;
            Ok(n as f64 / start.elapsed().as_secs_f64())
        })
        .collect()
}

/// Images per second of inference at `--infer-batch`, per timed round of four batches.
fn time_inference(
    task: &dyn Task,
    set: &ImageSet,
    normalizer: &Normalizer,
    args: &BenchArgs,
) -> Result<Vec<f64>> {
    let batch = batches(set, normalizer, args.infer_batch, 1)
        .pop()
        .expect("one batch");
    let again = || Batch {
        images: batch.images.clone(),
        labels: batch.labels.clone(),
        index: 0,
    };
    let round = |n: usize| -> Result<f64> {
        let start = Instant::now();
        for _ in 0..n {
            task.infer(again())?;
        }
        Ok((n * batch.len()) as f64 / start.elapsed().as_secs_f64())
    };
    round(1)?;
    (0..args.repeats).map(|_| round(4)).collect()
}

/// Writes `bench.json` into `out/name` (name defaults to `bench-<model>-<backend>-<time>`).
pub fn write(result: &BenchResult, out: &Path, name: Option<String>) -> Result<PathBuf> {
    let name = name
        .unwrap_or_else(|| run::default_name(&format!("bench-{}", result.model), &result.backend));
    let dir = out.join(name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("bench.json");
    fsio::write_json(&path, result)?;
    Ok(path)
}

/// The result as a table: a header line and a row.
pub fn table(r: &BenchResult) -> String {
    let header = format!(
        "{:<8} {:<8} {:>7} {:>6} {:>14} {:>14} {:>10}",
        "model", "backend", "threads", "batch", "train img/s", "infer img/s", "peak MiB"
    );
    let row = format!(
        "{:<8} {:<8} {:>7} {:>6} {:>14.0} {:>14.0} {:>10}",
        r.model,
        r.backend,
        r.threads,
        r.batch_size,
        r.train_images_per_sec,
        r.infer_images_per_sec,
        r.peak_rss_mib
            .map(|m| format!("{m:.0}"))
            .unwrap_or("-".into())
    );
    format!("{header}\n{row}")
}
