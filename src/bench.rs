//! `fovea bench`: training and inference throughput of a model on a backend, on in-memory data.
//!
//! One training image = forward + backward + optimizer step. Batches are prepared once before
//! timing, so the numbers measure the model and the backend, not the data path. Each figure is
//! the median of `repeats` timed rounds after a warm-up.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::module::Module;
use serde::Serialize;

use crate::config::{self, Config};
use crate::data::batch::{Batch, Normalizer, make_batch};
use crate::data::{self, ImageSet};
use crate::device::{self, BackendKind};
use crate::train::Task;
use crate::train::classifier::{Classifier, probabilities};

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

/// Peak resident memory of this process (Linux), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn batches(set: &ImageSet, normalizer: &Normalizer, size: usize, count: usize) -> Vec<Batch> {
    let order: Vec<usize> = (0..count * size).map(|i| i % set.len()).collect();
    let tables = normalizer.tables();
    order
        .chunks(size)
        .enumerate()
        .map(|(i, c)| make_batch(set, c, &tables, None, i))
        .collect()
}

pub fn run(args: BenchArgs) -> Result<BenchResult> {
    if args.steps == 0 || args.repeats == 0 || args.infer_batch == 0 {
        bail!("--steps, --repeats and --infer-batch must be at least 1");
    }
    let mut overrides = args.overrides;
    if let Some(b) = args.backend {
        overrides.push(format!("backend=\"{b}\""));
    }
    let config: Config = config::load(args.config.as_deref(), &overrides)?;
    let device = device::open(config.backend)?;
    // Real images, in memory: the built-in sample unless the config names another dataset.
    let data = data::load(&config.data, config.seed, true)?;
    let set = &data.train;
    let normalizer = Normalizer::fit(set);
    let classes = data.source.classes.len();
    let bs = config.train.batch_size;

    let ad = device.clone().autodiff();
    ad.seed(config.seed);
    let model = config.model.init(set.shape, classes, &ad)?;
    let mut task = Classifier::new(
        model,
        crate::train::optim::build(&config.train),
        ad,
        set.shape,
        classes,
        config.seed,
    );
    let parameters = task.parameter_count();

    let mut step = 0u64;
    let mut timed_round = |task: &mut Classifier, n: usize| -> Result<f64> {
        let prepared = batches(set, &normalizer, bs, n);
        let start = Instant::now();
        for b in prepared {
            task.step(b, config.train.lr, step)?;
            step += 1;
        }
        Ok((n * bs) as f64 / start.elapsed().as_secs_f64())
    };
    timed_round(&mut task, args.warmup.max(1))?;
    let train_rounds: Vec<f64> = (0..args.repeats)
        .map(|_| timed_round(&mut task, args.steps))
        .collect::<Result<_>>()?;

    let model = task.model().valid();
    let plain = device.clone().without_autodiff();
    let infer = batches(set, &normalizer, args.infer_batch, 1)
        .pop()
        .expect("one batch");
    let infer_round = |rounds: usize| -> Result<f64> {
        let start = Instant::now();
        for _ in 0..rounds {
            probabilities(&model, infer.images.clone(), set.shape, &plain)?;
        }
        Ok((rounds * infer.len()) as f64 / start.elapsed().as_secs_f64())
    };
    infer_round(1)?;
    let infer_rounds: Vec<f64> = (0..args.repeats)
        .map(|_| infer_round(4))
        .collect::<Result<_>>()?;

    Ok(BenchResult {
        model: config.model.kind().into(),
        backend: config.backend.to_string(),
        threads: crate::train::run::threads(),
        batch_size: bs,
        infer_batch_size: args.infer_batch,
        input: set.shape.to_string(),
        parameters,
        train_images_per_sec: median(&train_rounds),
        infer_images_per_sec: median(&infer_rounds),
        train_rounds,
        infer_rounds,
        steps_per_round: args.steps,
        repeats: args.repeats,
        peak_rss_mib: peak_rss_mib(),
        fovea_version: env!("CARGO_PKG_VERSION").into(),
    })
}
