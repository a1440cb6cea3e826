//! `fovea bench`: training and inference throughput of a task on a backend, on in-memory data,
//! written to `bench.json`.
//!
//! One training image = forward + backward + optimizer step. Batches are prepared once before
//! timing, so the numbers measure the model and the backend, not the data path. Each figure is
//! the median of `repeats` timed rounds after a warm-up.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::commands::child;
use crate::commands::session;
use crate::config::{self, Config};
use crate::data::batch::{Batch, Normalizer, make_batch};
use crate::data::{self, ImageSet};
use crate::device::{self, BackendKind};
use crate::fsio;
use crate::models::ModelConfig;
use crate::models::kernel_svm::KernelSvmConfig;
use crate::run_files;
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
    /// Single-image inferences timed for the latency figures.
    pub latency_runs: usize,
    /// With N > 0: train N steps from fresh weights on the training set's first N batches (in
    /// its order) and record each step's loss (a restorer's: its L1 loss; a GAN's: its
    /// discriminator's), to compare with another framework's.
    pub loss_steps: usize,
}

/// Every kind `--kinds all` benches.
pub const ALL_KINDS: [&str; 9] = [
    "cnn",
    "cnn-lif",
    "rnn",
    "cnn-rnn",
    "svm",
    "kernel-svm",
    "gan",
    "ssgan",
    "restore",
];

/// One kind on one backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// One image at a time (batch 1): median and 95th percentile, in milliseconds.
    pub latency_ms_median: f64,
    pub latency_ms_p95: f64,
    /// Counted multiply-adds of one image's forward pass (`None`: not counted for this kind).
    pub forward_macs_per_image: Option<u64>,
    /// Achieved GFLOP/s: training counts 3 forward passes' worth (forward, and a backward
    /// pass of about twice its work), 2 flops per multiply-add.
    pub train_gflops: Option<f64>,
    pub infer_gflops: Option<f64>,
    /// Training GFLOP/s over the machine's fp32 peak for the threads used.
    pub train_peak_fraction: Option<f64>,
    pub train_rounds: Vec<f64>,
    pub infer_rounds: Vec<f64>,
    pub steps_per_round: usize,
    pub repeats: usize,
    pub peak_rss_mib: Option<f64>,
    pub loss_curve: Option<Vec<f64>>,
}

/// The machine a bench ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: Option<String>,
    /// The threads fovea uses: every logical CPU.
    pub threads: usize,
    /// The widest fp32 vector instructions the CPU reports (`avx512f`, `avx2+fma`, …).
    pub simd: String,
    pub clock_ghz: Option<f64>,
    /// threads × fp32 lanes × 2 FMA units (assumed: not visible to software) × 2 flops × clock.
    pub fp32_peak_gflops: Option<f64>,
    pub peak_formula: Option<String>,
}

/// A kind that could not be benched (`--kinds`), and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failed {
    pub model: String,
    pub error: String,
}

/// `bench.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchFile {
    pub fovea_version: String,
    pub git_commit: Option<String>,
    pub machine: Machine,
    pub results: Vec<BenchResult>,
    pub failed: Vec<Failed>,
}

impl BenchFile {
    pub fn new(machine: Machine, results: Vec<BenchResult>, failed: Vec<Failed>) -> Self {
        Self {
            fovea_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: run_files::git_commit(),
            machine,
            results,
            failed,
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// The value at `q` (0..1) of sorted `v`, by the nearest lower rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).floor() as usize]
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

/// Runs the benchmark the arguments describe, in this process, on `machine` (for its peak).
pub fn run(args: &BenchArgs, machine: &Machine) -> Result<BenchResult> {
    if args.steps == 0 || args.repeats == 0 || args.infer_batch == 0 || args.latency_runs == 0 {
        bail!("--steps, --repeats, --infer-batch and --latency-runs must be at least 1");
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
    let loss_curve = match args.loss_steps {
        0 => None,
        n => {
            let mut fresh = session::build_task(&config, &data, &normalizer, true, &device)?;
            loss_curve(fresh.as_mut(), set, &normalizer, config.train.batch_size, n)?
        }
    };
    let mut task = session::build_task(&config, &data, &normalizer, false, &device)?;
    let train_rounds = match &config.model {
        // Fitted in one piece: a round is one whole fit of its subset.
        ModelConfig::KernelSvm(k) => {
            time_kernel_fit(k, set, &normalizer, data.source.classes.len(), args)?
        }
        _ => time_training(task.as_mut(), set, &normalizer, &config, args)?,
    };
    let infer_rounds = time_inference(task.as_ref(), set, &normalizer, args)?;
    let latencies = time_latency(task.as_ref(), set, &normalizer, args.latency_runs)?;
    let train_images_per_sec = median(&train_rounds);
    let infer_images_per_sec = median(&infer_rounds);
    let macs = config
        .model
        .forward_macs(set.shape, data.source.classes.len());
    let gflops = |images_per_sec: f64, passes: f64| {
        macs.map(|m| images_per_sec * m as f64 * 2.0 * passes / 1e9)
    };
    let train_gflops = match config.model {
        // fitted by SMO; three classifier passes and a generator's per step
        ModelConfig::KernelSvm(_) | ModelConfig::Ssgan(_) => None,
        _ => gflops(train_images_per_sec, 3.0),
    };
    Ok(BenchResult {
        model: config.model.kind().into(),
        backend: config.backend.to_string(),
        threads: device::threads(),
        batch_size: config.train.batch_size,
        infer_batch_size: args.infer_batch,
        input: set.shape.to_string(),
        parameters: task.parameter_count(),
        train_images_per_sec,
        infer_images_per_sec,
        latency_ms_median: quantile(&latencies, 0.5),
        latency_ms_p95: quantile(&latencies, 0.95),
        forward_macs_per_image: macs,
        train_gflops,
        infer_gflops: gflops(infer_images_per_sec, 1.0),
        train_peak_fraction: train_gflops
            .zip(machine.fp32_peak_gflops)
            .map(|(g, p)| g / p),
        train_rounds,
        infer_rounds,
        steps_per_round: args.steps,
        repeats: args.repeats,
        peak_rss_mib: device::peak_rss_mib(),
        loss_curve,
    })
}

/// Each kind of `kinds` benched by a `fovea bench` process of its own (its own peak memory; a
/// kind that fails is reported and the others still run), with `model.kind` set on top of the
/// other arguments (and, for `restore` without a config file, noise of σ = 0.3 to repair).
/// Each writes `dir/<kind>/bench.json`.
pub fn run_kinds(args: &BenchArgs, kinds: &[String], dir: &Path) -> Result<BenchFile> {
    let (mut results, mut failed) = (Vec::new(), Vec::new());
    for kind in kinds {
        eprintln!("bench: {kind}");
        let mut cmd = child::fovea()?;
        cmd.arg("bench")
            .arg("--out")
            .arg(dir)
            .arg("--name")
            .arg(kind);
        for (flag, value) in [
            ("--steps", args.steps),
            ("--repeats", args.repeats),
            ("--warmup", args.warmup),
            ("--infer-batch", args.infer_batch),
            ("--latency-runs", args.latency_runs),
            ("--loss-steps", args.loss_steps),
        ] {
            cmd.arg(flag).arg(value.to_string());
        }
        if let Some(c) = &args.config {
            cmd.arg("--config").arg(c);
        }
        if let Some(b) = args.backend {
            cmd.arg("--backend").arg(b.to_string());
        }
        for o in &args.overrides {
            cmd.arg("--set").arg(o);
        }
        cmd.arg("--set").arg(format!("model.kind={kind}"));
        // Restoration needs a damage to repair; without a config file it benches denoising.
        if kind == "restore" && args.config.is_none() {
            cmd.arg("--set").arg("model.damage.noise=0.3");
        }
        match child::run(cmd)? {
            None => {
                let path = dir.join(kind).join("bench.json");
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let file: BenchFile = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a bench.json", path.display()))?;
                results.extend(file.results);
            }
            Some(error) => {
                eprintln!("bench: {kind} failed: {error}");
                failed.push(Failed {
                    model: kind.clone(),
                    error,
                });
            }
        }
    }
    Ok(BenchFile::new(machine(), results, failed))
}

/// `--kinds`: `all` or a comma-separated list of kinds.
pub fn parse_kinds(text: &str) -> Result<Vec<String>> {
    if text == "all" {
        return Ok(ALL_KINDS.map(String::from).to_vec());
    }
    text.split(',')
        .map(|k| {
            let k = k.trim();
            if ALL_KINDS.contains(&k) {
                Ok(k.to_string())
            } else {
                bail!(
                    "--kinds: unknown kind `{k}` (one of: all, {})",
                    ALL_KINDS.join(", ")
                )
            }
        })
        .collect()
}

/// The per-step loss of `steps` training steps from fresh weights, on the batches the training
/// set gives in its order (`None` when the task reports no `loss`).
fn loss_curve(
    task: &mut dyn Task,
    set: &ImageSet,
    normalizer: &Normalizer,
    batch_size: usize,
    steps: usize,
) -> Result<Option<Vec<f64>>> {
    let mut curve = Vec::with_capacity(steps);
    for (i, b) in batches(set, normalizer, batch_size, steps)
        .into_iter()
        .enumerate()
    {
        let stats = task.step(b, 1.0, i as u64)?;
        // a restorer's L1 loss, a GAN's discriminator loss: the ones to compare
        let loss = ["loss", "l1", "d_loss"]
            .iter()
            .find_map(|name| stats.sums.iter().find(|(k, _)| k == name));
        match loss {
            Some((_, sum)) => curve.push(sum / stats.count as f64),
            None => return Ok(None),
        }
    }
    Ok(Some(curve))
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
    let threads = device::threads().clamp(1, classes);
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

/// Milliseconds of each of `runs` single-image inferences (after a few untimed), sorted.
fn time_latency(
    task: &dyn Task,
    set: &ImageSet,
    normalizer: &Normalizer,
    runs: usize,
) -> Result<Vec<f64>> {
    let one = batches(set, normalizer, 1, 1).pop().expect("one batch");
    let again = || Batch {
        images: one.images.clone(),
        labels: one.labels.clone(),
        index: 0,
    };
    for _ in 0..3 {
        task.infer(again())?;
    }
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let b = again();
        let start = Instant::now();
        task.infer(b)?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

/// This machine: CPU model, SIMD width, clock and the fp32 peak those give for the threads
/// fovea uses (Linux; `None` where `/proc` or `/sys` do not say).
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags: Vec<String> = field("flags")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let has = |f: &str| flags.iter().any(|x| x == f);
    let (simd, lanes) = if has("avx512f") {
        ("avx512f", 16)
    } else if has("avx2") && has("fma") {
        ("avx2+fma", 8)
    } else if has("avx") {
        ("avx", 8)
    } else if has("sse2") {
        ("sse2", 4)
    } else {
        ("unknown", 0)
    };
    // The highest clock the kernel reports, else the current one.
    let max_khz = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok());
    let clock_ghz = max_khz.map(|k| k / 1e6).or_else(|| {
        field("cpu MHz")
            .and_then(|m| m.parse::<f64>().ok())
            .map(|m| m / 1e3)
    });
    let threads = device::threads();
    // Two FMA units per core is an assumption (most server cores; software cannot see it).
    let fma_units = 2;
    let peak = clock_ghz
        .filter(|_| lanes > 0)
        .map(|ghz| (threads * lanes * fma_units * 2) as f64 * ghz);
    Machine {
        cpu_model: field("model name"),
        threads,
        simd: simd.into(),
        clock_ghz,
        fp32_peak_gflops: peak,
        peak_formula: clock_ghz.filter(|_| lanes > 0).map(|ghz| {
            format!(
                "{threads} threads × {lanes} fp32 lanes ({simd}) × {fma_units} FMA units (assumed) × 2 flops × {ghz:.2} GHz"
            )
        }),
    }
}

/// Writes `bench.json` into `out/name` (name defaults to `bench-<model>-<backend>-<time>`).
pub fn write(file: &BenchFile, out: &Path, name: Option<String>) -> Result<PathBuf> {
    let name = name.unwrap_or_else(|| {
        let model = match file.results.as_slice() {
            [one] => one.model.clone(),
            _ => "kinds".into(),
        };
        let backend = file
            .results
            .first()
            .map_or("-".to_string(), |r| r.backend.clone());
        run::default_name(&format!("bench-{model}"), &backend)
    });
    let dir = out.join(name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("bench.json");
    fsio::write_json(&path, file)?;
    Ok(path)
}

/// The results as a table, with the machine's peak under it.
pub fn table(file: &BenchFile) -> String {
    let mut lines = vec![format!(
        "{:<10} {:<8} {:>7} {:>6} {:>11} {:>11} {:>15} {:>16} {:>8}",
        "model",
        "backend",
        "threads",
        "batch",
        "train img/s",
        "infer img/s",
        "latency ms p50/p95",
        "train GFLOP/s",
        "peak MiB"
    )];
    for r in &file.results {
        let gflops = match (r.train_gflops, r.train_peak_fraction) {
            (Some(g), Some(f)) => format!("{g:.1} ({:.1} %)", f * 100.0),
            (Some(g), None) => format!("{g:.1}"),
            _ => "-".into(),
        };
        lines.push(format!(
            "{:<10} {:<8} {:>7} {:>6} {:>11.0} {:>11.0} {:>15} {:>16} {:>8}",
            r.model,
            r.backend,
            r.threads,
            r.batch_size,
            r.train_images_per_sec,
            r.infer_images_per_sec,
            format!("{:.3}/{:.3}", r.latency_ms_median, r.latency_ms_p95),
            gflops,
            r.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}"))
        ));
    }
    for f in &file.failed {
        lines.push(format!("{:<10} failed: {}", f.model, f.error));
    }
    let m = &file.machine;
    lines.push(format!(
        "CPU: {}; fp32 peak {}",
        m.cpu_model.as_deref().unwrap_or("unknown"),
        match (&m.fp32_peak_gflops, &m.peak_formula) {
            (Some(p), Some(f)) => format!("{p:.0} GFLOP/s = {f}"),
            _ => "unknown".into(),
        }
    ));
    lines.join("\n")
}
