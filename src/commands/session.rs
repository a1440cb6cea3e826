//! Training sessions, in run order: resolve the config → open the device → load the data → build
//! the task → run the training → summarize. `train` starts a run folder, `resume` continues one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde_json::{Map, Value, json};

use super::generate;
use super::runs::{Opened, load_run};
use crate::config::{self, Config};
use crate::data::batch::{Normalizer, batch_count};
use crate::data::{self, Splits};
use crate::device::{self, BackendKind};
use crate::models::ModelConfig;
use crate::report::plots;
use crate::run_files::{self, Resume, RunInfo, SUMMARY, read_summary};
use crate::tasks;
use crate::tasks::judge::Judge;
use crate::train::checkpoint::{self, CheckpointMeta};
use crate::train::config::{OptimizerKind, Optimizers};
use crate::train::run::{self, Run};
use crate::train::{self, FitContext, FitOptions, LoopState, Outcome, Task, TrainConfig};

/// `fovea train`.
pub struct TrainArgs {
    pub config: Option<PathBuf>,
    pub overrides: Vec<String>,
    pub backend: Option<BackendKind>,
    pub data_dir: Option<PathBuf>,
    pub out: PathBuf,
    pub name: Option<String>,
    pub options: FitOptions,
}

/// The result of a train or resume command.
pub struct Finished {
    pub run_dir: PathBuf,
    pub outcome: Outcome,
    /// `summary.json`, when the run completed.
    pub summary: Option<Value>,
}

/// `--backend` and `--data-dir` are overrides like `--set`, so the saved config records them.
pub fn cli_overrides(
    mut overrides: Vec<String>,
    backend: Option<BackendKind>,
    data_dir: Option<&Path>,
) -> Vec<String> {
    if let Some(b) = backend {
        overrides.push(format!("backend=\"{b}\""));
    }
    if let Some(d) = data_dir {
        overrides.push(format!(
            "data.path={}",
            toml::Value::String(d.display().to_string())
        ));
    }
    overrides
}

/// Loads the run's data, saying on stderr (even when quiet) when it fell back to another set.
/// Adds the generated images of `[data.synthetic]` to the training set.
fn load_data(config: &Config) -> Result<Splits> {
    let mut data = data::load(&config.data, config.seed)?;
    if let Some(why) = &data.source.fallback {
        eprintln!("warning: {why}");
    }
    generate::add_synthetic(
        &config.data.synthetic,
        &mut data,
        config.seed,
        config.backend,
    )?;
    Ok(data)
}

fn new_run_info(
    config: &Config,
    device: &Device,
    data: &Splits,
    normalizer: &Normalizer,
) -> RunInfo {
    RunInfo {
        fovea_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: run_files::git_commit(),
        burn_version: "0.22.1".into(),
        backend: config.backend.to_string(),
        device: device::describe(config.backend, device),
        threads: device::threads(),
        command: std::env::args().collect(),
        data: data.source.clone(),
        normalizer: normalizer.clone(),
        started: run_files::now(),
        ended: None,
        status: "running".into(),
        resumes: Vec::new(),
    }
}

/// The task the config names, with fresh weights, for the run's data (normalized by
/// `normalizer`).
pub fn build_task(
    config: &Config,
    data: &Splits,
    normalizer: &Normalizer,
    quiet: bool,
    device: &Device,
) -> Result<Box<dyn Task>> {
    config.model.check_fits(
        data.train.shape,
        data.source.classes.len(),
        config.train.batch_size,
        config.train.eval_batch_size,
    )?;
    let judge = match &config.model {
        ModelConfig::Gan(_) | ModelConfig::Restore(_) => Some(judge(config, data, quiet)?),
        _ => None,
    };
    let settings = tasks::Settings {
        model: &config.model,
        train: &config.train,
        eval: &config.eval,
        augment: &config.data.augment,
        seed: config.seed,
    };
    tasks::build(&settings, data, normalizer, judge, device)
}

/// The classifier a GAN's FID or a restoration's accuracy is measured with: `eval.judge`, or
/// the reference CNN trained on the same data for `eval.judge_epochs` once and kept in the user
/// cache under a digest of the data and the seed.
fn judge(config: &Config, data: &Splits, quiet: bool) -> Result<Judge> {
    let dir = match &config.eval.judge {
        Some(dir) => dir.clone(),
        None => cached_judge(config, config.eval.judge_epochs(), data, quiet)?,
    };
    let loaded = load_run(&dir, "best", Some(config.backend))
        .with_context(|| format!("eval.judge = {}", dir.display()))?;
    if loaded.meta.shape != data.train.shape || loaded.meta.classes != data.source.classes {
        bail!(
            "eval.judge = {}: it classifies {} images into {:?}; the data has {} images in {:?}",
            dir.display(),
            loaded.meta.shape,
            loaded.meta.classes,
            data.train.shape,
            data.source.classes
        );
    }
    Ok(Judge {
        model: loaded.model,
        normalizer: loaded.meta.normalizer,
        run: dir,
        device: loaded.device,
    })
}

/// The automatic judge's run folder: reused when a finished one exists, resumed when one was
/// interrupted, trained otherwise.
fn cached_judge(config: &Config, epochs: usize, data: &Splits, quiet: bool) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let key = json!({
        "source": data.source,
        "data": config.data,
        "seed": config.seed,
        "epochs": epochs,
        "model": ModelConfig::default(),
    });
    let digest = hex::encode(Sha256::digest(key.to_string().as_bytes()));
    let root = dirs::cache_dir()
        .context("no user cache directory on this system; set eval.judge to a classifier run")?
        .join("fovea")
        .join("judges");
    let name = format!("{}-{}", data.source.dataset, &digest[..16]);
    let judge_config = reference_cnn(config, config.data.clone(), epochs)?;
    let what =
        format!("the reference CNN on this data for {epochs} epochs, once (no eval.judge given)");
    ensure_run(judge_config, &root, &name, "judge", &what, quiet)
}

/// The reference CNN (the default model and training) on `data` for `epochs` epochs, with the
/// seed and backend of the GAN run `base` it serves (as its judge, or to measure GAN-train).
fn reference_cnn(base: &Config, data: data::DataConfig, epochs: usize) -> Result<Config> {
    Config {
        seed: base.seed,
        backend: base.backend,
        data,
        model: ModelConfig::default(),
        train: TrainConfig {
            epochs,
            ..TrainConfig::default()
        },
        eval: Default::default(),
    }
    .resolved()
}

/// Brings the run `root/name` of `config` to its end and returns its folder: reused when it
/// finished before, resumed when it was interrupted, trained otherwise. A finished or
/// interrupted run made from another config is refused (the backend may differ). What happens is
/// said on stderr, prefixed by `label`; `what` describes a fresh training.
pub fn ensure_run(
    config: Config,
    root: &Path,
    name: &str,
    label: &str,
    what: &str,
    quiet: bool,
) -> Result<PathBuf> {
    let dir = root.join(name);
    let options = FitOptions {
        quiet,
        crash_at_step: None,
    };
    let exists = dir.join(run_files::RUN_JSON).is_file();
    if exists {
        check_same_config(&dir, &config, label)?;
    }
    let done = if dir.join(SUMMARY).is_file() {
        eprintln!("{label}: reusing {} (finished before)", dir.display());
        return Ok(dir);
    } else if exists {
        eprintln!("{label}: resuming the interrupted run {}", dir.display());
        resume(&dir, Some(config.backend), None, options)?
    } else {
        eprintln!("{label}: training {what} (into {})", dir.display());
        train_config(config, root, name, options)?
    };
    if done.outcome != Outcome::Completed {
        bail!(
            "{label}: the training of {} stopped before its end; run the same command again to resume it",
            dir.display()
        );
    }
    Ok(dir)
}

/// A run folder reused or resumed for `config` must hold a run of that config (its backend
/// aside).
pub fn check_same_config(dir: &Path, config: &Config, label: &str) -> Result<()> {
    let mut saved = config::run_config(dir)?;
    saved.backend = config.backend;
    if &saved != config {
        bail!(
            "{label}: {} holds a run of another config; move it away or choose another name \
             (its config.toml differs from the one asked for)",
            dir.display()
        );
    }
    Ok(())
}

fn describe_start(run: &Run, config: &Config, data: &Splits, task: &dyn Task) {
    let s = &data.source;
    println!("run folder: {}", run.dir.display());
    println!(
        "data: {} — {}; {} train / {} val / {} test images of {}, {} classes",
        s.dataset,
        s.origin,
        s.train,
        s.val,
        s.test,
        s.shape,
        s.classes.len()
    );
    if s.unlabelled > 0 {
        let kept = match config.data.labels_per_class {
            0 => String::new(),
            n => format!("{n} per class kept, "),
        };
        let use_of_them = if config.model.is_semi_supervised() {
            format!(
                "and the run's epochs pass over all {} training images without their labels",
                s.train + s.unlabelled
            )
        } else {
            format!("which a {} run does not train on", config.model.kind())
        };
        println!(
            "labels: {kept}{} labelled training images; {} training images without labels, \
             {use_of_them}",
            s.train, s.unlabelled,
        );
    }
    if let Some(g) = &s.synthetic {
        println!(
            "synthetic: the training set holds {} images drawn from {} ({}, step {}) and {} real ones",
            g.images, g.generator, g.checkpoint, g.step, g.real
        );
    }
    // a classifier: "Adam lr 0.001"; a GAN: each optimizer by name, with Adam's betas
    let optimizers = match tasks::optimizers(&config.model) {
        Optimizers::Named(named) => named
            .iter()
            .map(|(name, _)| {
                let o = config.train.named_optimizer(name);
                let betas = match o.optimizer {
                    OptimizerKind::Sgd => String::new(),
                    _ => format!(" (betas {}, {})", o.beta1, o.beta2),
                };
                format!("{name} {:?}{betas} lr {}", o.optimizer, o.lr)
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => {
            let o = config.train.the_optimizer();
            format!("{:?} lr {}", o.optimizer, o.lr)
        }
    };
    let training = match &config.model {
        ModelConfig::KernelSvm(_) => "fitted in one piece by SMO, not by epochs".to_string(),
        _ => format!(
            "{} epochs of batch {}, {optimizers}",
            config.train.epochs, config.train.batch_size,
        ),
    };
    println!(
        "model: {} ({} parameters); backend {}; {training}",
        config.model.kind(),
        task.parameter_count(),
        config.backend,
    );
}

pub fn train(args: TrainArgs) -> Result<Finished> {
    let overrides = cli_overrides(args.overrides, args.backend, args.data_dir.as_deref());
    let config = config::load(args.config.as_deref(), &overrides)?;
    let data = load_data(&config)?;
    // Named after the data actually used, which a fall-back can make differ from the config.
    let name = args
        .name
        .unwrap_or_else(|| run::default_name(config.model.kind(), &data.source.dataset));
    start(config, data, &args.out, &name, args.options)
}

/// Trains `config` into `out/name`.
fn train_config(config: Config, out: &Path, name: &str, options: FitOptions) -> Result<Finished> {
    let data = load_data(&config)?;
    start(config, data, out, name, options)
}

fn start(
    config: Config,
    data: Splits,
    out: &Path,
    name: &str,
    options: FitOptions,
) -> Result<Finished> {
    let device = device::open(config.backend)?;
    let normalizer = Normalizer::fit(&data.train);
    // The task is built before the run folder exists, so a config that cannot build one
    // (pooling that shrinks the images to nothing) leaves nothing behind.
    let mut task = build_task(&config, &data, &normalizer, options.quiet, &device)?;
    let run = Run::create(out, name)?;
    crate::fsio::write_atomic(
        &run.dir.join(run_files::CONFIG),
        config.to_toml().as_bytes(),
    )?;
    let mut info = new_run_info(&config, &device, &data, &normalizer);
    run.write_json(run_files::RUN_JSON, &info)?;
    if !options.quiet {
        describe_start(&run, &config, &data, task.as_ref());
    }
    let setup = Setup::new(run, config, device, data, normalizer, options);
    run_training(&setup, task.as_mut(), LoopState::default(), &mut info)
}

/// `fovea resume RUN`: continues from the newest intact checkpoint; a run stopped before its
/// first checkpoint starts over from step 0.
pub fn resume(
    dir: &Path,
    backend: Option<BackendKind>,
    data_dir: Option<&Path>,
    options: FitOptions,
) -> Result<Finished> {
    let run = Run::open(dir)?;
    let mut config = config::run_config(dir)?;
    if let Some(b) = backend {
        config.backend = b;
    }
    if let Some(d) = data_dir {
        config.data.path = Some(d.to_path_buf());
    }
    let point = checkpoint::newest_intact::<CheckpointMeta>(&run.checkpoints())?;
    let device = device::open(config.backend)?;
    let data = load_data(&config)?;
    let mut info = match (&point, run.info()) {
        (_, Ok(info)) => info,
        // A crash right after the run folder was made: nothing to lose, start afresh.
        (None, Err(_)) => new_run_info(&config, &device, &data, &Normalizer::fit(&data.train)),
        (Some(_), Err(e)) => return Err(e),
    };
    check_same_data(&info.data, &data.source)?;
    info.normalizer
        .check(data.train.shape.channels)
        .with_context(|| format!("{}", run.dir.join(run_files::RUN_JSON).display()))?;
    if let Some((path, meta, _)) = &point {
        meta.check()
            .and_then(|_| {
                meta.check_data(
                    "the run's data",
                    data.train.shape,
                    data.source.classes.len(),
                )
            })
            .with_context(|| format!("checkpoint {}", path.display()))?;
    }
    let mut task = build_task(&config, &data, &info.normalizer, options.quiet, &device)?;
    let (state, normalizer, from) = match point {
        Some((path, meta, parts)) => {
            task.load(parts)?;
            (meta.state, meta.normalizer, Some(path))
        }
        None => (LoopState::default(), info.normalizer.clone(), None),
    };
    // Only once the checkpoint has loaded: drop what the crash threw away, repair best.ckpt.
    if let Some(note) = train::rewind(&run, &state)? {
        eprintln!("note: {note}");
    }
    record_resume(
        &run,
        &mut info,
        &config,
        &device,
        from.as_deref(),
        state.step,
    )?;
    if !options.quiet {
        match &from {
            Some(path) => println!(
                "resuming {} from {} (epoch {}, batch {}, step {})",
                run.dir.display(),
                path.display(),
                state.epoch + 1,
                state.batch,
                state.step
            ),
            None => println!(
                "{} stopped before its first checkpoint: starting it over from step 0",
                run.dir.display()
            ),
        }
    }
    let setup = Setup::new(run, config, device, data, normalizer, options);
    run_training(&setup, task.as_mut(), state, &mut info)
}

/// Adds this resume to `run.json` (running again), warning when the backend or the thread count
/// differs from the run's: the continuation is then not bit-identical.
fn record_resume(
    run: &Run,
    info: &mut RunInfo,
    config: &Config,
    device: &Device,
    from: Option<&Path>,
    step: u64,
) -> Result<()> {
    let resumed = Resume {
        time: run_files::now(),
        backend: config.backend.to_string(),
        device: device::describe(config.backend, device),
        threads: device::threads(),
        checkpoint: from.map(|p| p.display().to_string()),
        step,
    };
    if resumed.backend != info.backend || resumed.threads != info.threads {
        eprintln!(
            "warning: this run started on {} with {} threads and continues on {} with {} threads: \
             it will not be bit-identical to an uninterrupted run",
            info.backend, info.threads, resumed.backend, resumed.threads
        );
    }
    info.resumes.push(resumed);
    info.status = "running".into();
    info.ended = None;
    run.write_json(run_files::RUN_JSON, info)
}

/// A resumed run must see the data it started with.
fn check_same_data(recorded: &data::DataSource, now: &data::DataSource) -> Result<()> {
    let sums = |s: &data::DataSource| s.files.iter().map(|f| f.sha256.clone()).collect::<Vec<_>>();
    if sums(recorded) != sums(now) || recorded.train != now.train || recorded.test != now.test {
        bail!(
            "the data found now ({}: {} train / {} test) differs from the data this run started with ({}: {} train / {} test); \
             point --data-dir at the original files",
            now.origin,
            now.train,
            now.test,
            recorded.origin,
            recorded.train,
            recorded.test
        );
    }
    Ok(())
}

/// What a training session runs on.
struct Setup {
    run: Run,
    config: Config,
    device: Device,
    data: Splits,
    normalizer: Normalizer,
    options: FitOptions,
}

impl Setup {
    fn new(
        run: Run,
        config: Config,
        device: Device,
        data: Splits,
        normalizer: Normalizer,
        options: FitOptions,
    ) -> Self {
        Setup {
            run,
            config,
            device,
            data,
            normalizer,
            options,
        }
    }
}

/// Runs the training from `state` to its end (or an interrupt), then writes the summary and the
/// run's final status.
fn run_training(
    setup: &Setup,
    task: &mut dyn Task,
    state: LoopState,
    info: &mut RunInfo,
) -> Result<Finished> {
    let spec = task.spec();
    let all;
    let epoch_set = if setup.config.model.is_semi_supervised() {
        all = setup.data.all_without_labels();
        &all
    } else {
        &setup.data.train
    };
    let steps_per_epoch = batch_count(epoch_set.len(), setup.config.train.batch_size);
    let redraw = |records: &[run_files::Record]| {
        plots::curves_from_metrics(&setup.run.dir, records, steps_per_epoch, &spec.curves)
    };
    let ctx = FitContext {
        run: &setup.run,
        train: &setup.config.train,
        seed: setup.config.seed,
        augment: &setup.config.data.augment,
        data: &setup.data,
        epoch_set,
        normalizer: &setup.normalizer,
        kind: setup.config.model.kind(),
        options: &setup.options,
        on_epoch_end: &redraw,
    };
    train::install_interrupt_handler();
    let fitted = match &setup.config.model {
        // Fitted in one piece, not by steps.
        ModelConfig::KernelSvm(k) => tasks::kernel_svm::fit_run(&ctx, k, task, &setup.device),
        _ => train::fit(&ctx, task, state),
    };
    let (outcome, state) = match fitted {
        Ok(r) => r,
        Err(e) => {
            info.finish(&setup.run, &format!("failed: {e:#}"))?;
            return Err(e);
        }
    };
    let quiet = setup.options.quiet;
    let summary = match outcome {
        // As a kill would: nothing more is written.
        Outcome::Crashed => None,
        Outcome::Interrupted => {
            info.finish(&setup.run, "interrupted")?;
            if !quiet {
                println!(
                    "stopped at step {}; continue with: fovea resume {}",
                    state.step,
                    setup.run.dir.display()
                );
            }
            None
        }
        Outcome::Completed => {
            let mut summary = write_summary(setup, task, &state)?;
            if let ModelConfig::Gan(_) = &setup.config.model
                && setup.config.eval.gan_train_epochs() > 0
            {
                gan_train(setup, &mut summary)?;
            }
            info.finish(&setup.run, "completed")?;
            if !quiet {
                println!("{}", summary_line(&summary, &spec.eval, spec.select.0));
                println!("artifacts: {}", setup.run.dir.display());
            }
            Some(summary)
        }
    };
    Ok(Finished {
        run_dir: setup.run.dir.clone(),
        outcome,
        summary,
    })
}

/// Test metrics named `test_<metric>`.
fn test_metrics(report: &train::Report) -> Map<String, Value> {
    report
        .metrics
        .iter()
        .map(|(k, v)| (format!("test_{k}"), json!(v)))
        .collect()
}

/// `summary.json`: the test metrics of the last weights at the top level (with the task's
/// details, e.g. a classifier's confusion matrix), and those of the last and the best
/// checkpoint under `last` and `best`.
fn write_summary(setup: &Setup, task: &mut dyn Task, state: &LoopState) -> Result<Value> {
    let spec = task.spec();
    let eval_batch = setup.config.train.eval_batch_size;
    let test = &setup.data.test;
    let last = task.evaluate(test, &setup.normalizer, eval_batch)?;
    task.write_figures(&last, &setup.run.dir)?;
    let last_name = checkpoint::step_name(state.step);
    let mut s = test_metrics(&last);
    s.insert("test_count".into(), json!(last.count));
    s.extend(last.details.clone());
    s.insert("parameter_count".into(), json!(task.parameter_count()));
    s.insert("epochs".into(), json!(state.epoch));
    s.insert("steps".into(), json!(state.step));
    s.insert(format!("best_val_{}", spec.select.0), json!(state.best));
    s.insert("best_step".into(), json!(state.best_step));
    s.insert("training_time_s".into(), json!(state.elapsed_s));
    s.insert("mean_epoch_time_s".into(), json!(state.mean_epoch_time_s()));
    // The peak resident memory of the process that finished the run (of this run alone when
    // it ran in a process of its own, as `fovea train` and `fovea compare` run it).
    s.insert("peak_rss_mib".into(), json!(device::peak_rss_mib()));
    s.insert("checkpoint".into(), json!(last_name));
    let mut last_entry = test_metrics(&last);
    last_entry.insert("checkpoint".into(), json!(last_name));
    last_entry.insert("step".into(), json!(state.step));
    s.insert("last".into(), last_entry.into());
    let best_path = setup.run.checkpoints().join(checkpoint::BEST);
    let best = if best_path.exists() {
        let (meta, parts) = checkpoint::read::<CheckpointMeta>(&best_path)?;
        // The best step is often the last one: its weights were just evaluated.
        let mut entry = if meta.state.step == state.step {
            test_metrics(&last)
        } else {
            task.load(parts)?;
            test_metrics(&task.evaluate(test, &setup.normalizer, eval_batch)?)
        };
        entry.insert("checkpoint".into(), json!(checkpoint::BEST));
        entry.insert("step".into(), json!(meta.state.step));
        Value::Object(entry)
    } else {
        Value::Null
    };
    s.insert("best".into(), best);
    let summary = Value::Object(s);
    setup.run.write_json(SUMMARY, &summary)?;
    Ok(summary)
}

/// `fovea eval` of a run whose task is not a classifier (gan, restore): the task rebuilt with
/// its judge, the checkpoint's weights loaded, and its evaluation on the run's test set.
pub fn eval_task(
    dir: &Path,
    which: &str,
    backend: Option<BackendKind>,
) -> Result<(PathBuf, train::Report)> {
    let run = Opened::open(dir, which, backend)?;
    let data = load_data(&run.config)?;
    let mut task = build_task(&run.config, &data, &run.meta.normalizer, true, &run.device)?;
    task.load(run.parts)?;
    let batch = run.config.train.eval_batch_size;
    let report = task.evaluate(&data.test, &run.meta.normalizer, batch)?;
    Ok((run.checkpoint, report))
}

/// GAN-train: the reference CNN trained on the generated images alone (from the GAN's
/// best.ckpt), tested on the real test set. Its run is `gan-train/` inside the GAN's run folder;
/// its accuracy goes into the GAN's summary as `gan_train`.
fn gan_train(setup: &Setup, summary: &mut Value) -> Result<()> {
    let (epochs, ratio) = (
        setup.config.eval.gan_train_epochs(),
        setup.config.eval.gan_train_ratio(),
    );
    let data = data::DataConfig {
        synthetic: data::SyntheticConfig {
            generator: Some(setup.run.dir.clone()),
            ratio,
            checkpoint: "best".into(),
            only: true,
        },
        ..setup.config.data.clone()
    };
    let config = reference_cnn(&setup.config, data, epochs)?;
    let what =
        format!("the reference CNN on generated images alone for {epochs} epochs (GAN-train)");
    let dir = ensure_run(
        config,
        &setup.run.dir,
        GAN_TRAIN,
        "gan-train",
        &what,
        setup.options.quiet,
    )?;
    let accuracy = read_summary(&dir)?["test_accuracy"].clone();
    let entry = summary.as_object_mut().expect("the summary is an object");
    entry.insert("test_gan_train".into(), accuracy);
    entry.insert("gan_train_run".into(), json!(GAN_TRAIN));
    setup.run.write_json(SUMMARY, summary)
}

/// The folder of a GAN run's GAN-train classifier, inside the GAN's run folder.
pub const GAN_TRAIN: &str = "gan-train";

/// The lines printed at the end of a run: the test metrics of the last and the best weights.
fn summary_line(summary: &Value, eval: &[&str], select: &str) -> String {
    let metrics = |entry: &Value| {
        eval.iter()
            .filter_map(|m| {
                entry[format!("test_{m}")]
                    .as_f64()
                    .map(|v| format!("{m} {v:.4}"))
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut lines = vec![format!(
        "test, last weights (step {}): {}  ({} images)",
        summary["last"]["step"],
        metrics(&summary["last"]),
        summary["test_count"]
    )];
    if summary["best"].is_object() {
        lines.push(format!(
            "test, best.ckpt (step {}, val {select} {:.4}): {}",
            summary["best"]["step"],
            summary[format!("best_val_{select}")]
                .as_f64()
                .unwrap_or(f64::NAN),
            metrics(&summary["best"])
        ));
    }
    if let Some(acc) = summary["test_gan_train"].as_f64() {
        lines.push(format!(
            "GAN-train {acc:.4}: a CNN trained on generated images alone ({}/), tested on the real test set",
            GAN_TRAIN
        ));
    }
    lines.push(format!(
        "training time {:.1}s ({:.1}s per epoch)",
        summary["training_time_s"].as_f64().unwrap_or(0.0),
        summary["mean_epoch_time_s"].as_f64().unwrap_or(0.0)
    ));
    lines.join("\n")
}
