//! The commands' work, in run order: resolve config → open device → load data → build the task →
//! fit → summarize. `train` starts a run folder, `resume` continues one, `eval` and `predict`
//! read one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;

use crate::config::{self, Config};
use crate::data::batch::{Normalizer, eval_batches};
use crate::data::{self, ImageSet, InputShape, Splits};
use crate::device::{self, BackendKind};
use crate::models::Model;
use crate::train::classifier::{self, Classifier};
use crate::train::run::{self, Run, RunInfo};
use crate::train::{
    self, CheckpointMeta, FitContext, FitOptions, LoopState, Outcome, Task, checkpoint, metrics,
};

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
    pub summary: Option<metrics::Summary>,
}

/// `--backend` and `--data-dir` are overrides like `--set`, so the saved config records them.
fn cli_overrides(
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

fn build_classifier(
    config: &Config,
    shape: InputShape,
    classes: usize,
    device: &Device,
) -> Result<Classifier> {
    let ad = device.clone().autodiff();
    ad.seed(config.seed);
    let model = config.model.init(shape, classes, &ad)?;
    Ok(Classifier::new(
        model,
        train::optim::build(&config.train),
        ad,
        shape,
        classes,
        config.seed,
    ))
}

fn describe_start(run: &Run, config: &Config, data: &Splits, task: &impl Task, quiet: bool) {
    if quiet {
        return;
    }
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
    println!(
        "model: {} ({} parameters); backend {}; {} epochs of batch {}, {:?} lr {}",
        config.model.kind(),
        task.parameter_count(),
        config.backend,
        config.train.epochs,
        config.train.batch_size,
        config.train.optimizer,
        config.train.lr
    );
}

pub fn train(args: TrainArgs) -> Result<Finished> {
    let overrides = cli_overrides(args.overrides, args.backend, args.data_dir.as_deref());
    let config = config::load(args.config.as_deref(), &overrides)?;
    let device = device::open(config.backend)?;
    let data = data::load(&config.data, config.seed, args.options.quiet)?;
    let name = args
        .name
        .unwrap_or_else(|| run::default_name(config.model.kind(), &config.data.dataset));
    // The model is built before the run folder exists, so a config that cannot build one
    // (pooling that shrinks the images to nothing) leaves nothing behind.
    let mut task = build_classifier(
        &config,
        data.train.shape,
        data.source.classes.len(),
        &device,
    )?;
    let run = Run::create(&args.out, &name)?;
    std::fs::write(run.dir.join(run::CONFIG), config.to_toml())
        .with_context(|| format!("cannot write {}", run.dir.join(run::CONFIG).display()))?;
    let normalizer = Normalizer::fit(&data.train);
    let mut info = RunInfo {
        fovea_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: run::git_commit(),
        burn_version: "0.22.1".into(),
        backend: config.backend.to_string(),
        device: device::describe(config.backend, &device),
        threads: run::threads(),
        command: std::env::args().collect(),
        data: data.source.clone(),
        normalizer: normalizer.clone(),
        started: run::now(),
        ended: None,
        status: "running".into(),
        resumes: Vec::new(),
    };
    run.write_json(run::RUN_JSON, &info)?;
    describe_start(&run, &config, &data, &task, args.options.quiet);
    let ctx = FitContext {
        run: &run,
        config: &config,
        data: &data,
        normalizer: &normalizer,
        options: &args.options,
    };
    finish(&ctx, &mut task, LoopState::default(), &mut info)
}

/// `fovea resume RUN`.
pub fn resume(
    dir: &Path,
    backend: Option<BackendKind>,
    data_dir: Option<&Path>,
    options: FitOptions,
) -> Result<Finished> {
    let run = Run::open(dir)?;
    let mut config = run_config(dir, backend)?;
    if let Some(d) = data_dir {
        config.data.path = Some(d.to_path_buf());
    }
    let Some((ckpt_path, meta, parts)) =
        checkpoint::newest_intact::<CheckpointMeta>(&run.checkpoints())?
    else {
        bail!(
            "{} has no checkpoint yet (it stopped before its first one); start it again with `fovea train`",
            run.checkpoints().display()
        );
    };
    let mut info = train::read_run_info(&run.dir)?;
    let device = device::open(config.backend)?;
    let data = data::load(&config.data, config.seed, options.quiet)?;
    check_same_data(&info.data, &data.source)?;
    let mut task = build_classifier(&config, meta.shape, meta.classes.len(), &device)?;
    task.load(parts)?;
    // Only once the checkpoint has loaded: drop the metrics the crash threw away.
    metrics::truncate_after(&run.dir, meta.state.step)?;
    if !options.quiet {
        println!(
            "resuming {} from {} (epoch {}, batch {}, step {})",
            run.dir.display(),
            ckpt_path.display(),
            meta.state.epoch + 1,
            meta.state.batch,
            meta.state.step
        );
    }
    info.resumes
        .push(format!("{} from {}", run::now(), ckpt_path.display()));
    info.backend = config.backend.to_string();
    info.device = device::describe(config.backend, &device);
    info.status = "running".into();
    info.ended = None;
    run.write_json(run::RUN_JSON, &info)?;
    let ctx = FitContext {
        run: &run,
        config: &config,
        data: &data,
        normalizer: &meta.normalizer,
        options: &options,
    };
    finish(&ctx, &mut task, meta.state, &mut info)
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

fn finish(
    ctx: &FitContext,
    task: &mut Classifier,
    state: LoopState,
    info: &mut RunInfo,
) -> Result<Finished> {
    train::install_interrupt_handler();
    let result = train::fit(ctx, task, state);
    let (outcome, state) = match result {
        Ok(r) => r,
        Err(e) => {
            train::finish_run_info(ctx.run, info, &format!("failed: {e:#}"))?;
            return Err(e);
        }
    };
    match outcome {
        Outcome::Interrupted => {
            train::finish_run_info(ctx.run, info, "interrupted")?;
            if !ctx.options.quiet {
                println!(
                    "stopped at step {}; continue with: fovea resume {}",
                    state.step,
                    ctx.run.dir.display()
                );
            }
            Ok(Finished {
                run_dir: ctx.run.dir.clone(),
                outcome,
                summary: None,
            })
        }
        Outcome::Completed => {
            let summary =
                train::write_summary(ctx, task, &state, &checkpoint::step_name(state.step))?;
            train::finish_run_info(ctx.run, info, "completed")?;
            if !ctx.options.quiet {
                println!(
                    "test accuracy {:.4}  test loss {:.4}  ({} images; best val acc {}; {:.1}s training, {:.1}s/epoch)",
                    summary.test_accuracy,
                    summary.test_loss,
                    summary.test_count,
                    summary
                        .best_val_accuracy
                        .map(|a| format!("{a:.4}"))
                        .unwrap_or("-".into()),
                    summary.training_time_s,
                    summary.mean_epoch_time_s
                );
                println!("artifacts: {}", ctx.run.dir.display());
            }
            Ok(Finished {
                run_dir: ctx.run.dir.clone(),
                outcome,
                summary: Some(summary),
            })
        }
    }
}

/// A trained model read back from a run folder, for eval and predict.
pub struct Loaded {
    pub model: Model,
    pub meta: CheckpointMeta,
    pub config: Config,
    pub device: Device,
    pub checkpoint: PathBuf,
}

/// The config a run folder was started with, on `backend` if one is given.
fn run_config(dir: &Path, backend: Option<BackendKind>) -> Result<Config> {
    let path = dir.join(run::CONFIG);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (is {} a run folder?)",
            path.display(),
            dir.display()
        )
    })?;
    let mut config = config::from_str(&text, &path.display().to_string())?;
    if let Some(b) = backend {
        config.backend = b;
    }
    Ok(config)
}

/// Loads a run's model from `which` checkpoint: `best`, `last` or a step number.
pub fn load_run(dir: &Path, which: &str, backend: Option<BackendKind>) -> Result<Loaded> {
    let config = run_config(dir, backend)?;
    let ckpts = dir.join(run::CHECKPOINTS);
    let (path, meta, parts) = match which {
        "last" => checkpoint::newest_intact::<CheckpointMeta>(&ckpts)?
            .with_context(|| format!("{} has no checkpoint", ckpts.display()))?,
        "best" => {
            let best = ckpts.join(checkpoint::BEST);
            if best.exists() {
                let (m, p) = checkpoint::read(&best)?;
                (best, m, p)
            } else {
                eprintln!(
                    "note: {} has no best checkpoint (no validation set?); using the last one",
                    ckpts.display()
                );
                checkpoint::newest_intact::<CheckpointMeta>(&ckpts)?
                    .with_context(|| format!("{} has no checkpoint", ckpts.display()))?
            }
        }
        n => {
            let step: u64 = n.parse().map_err(|_| {
                anyhow::anyhow!("--checkpoint {n}: expected best, last or a step number")
            })?;
            let p = ckpts.join(checkpoint::step_name(step));
            if !p.exists() {
                let have: Vec<String> = checkpoint::list(&ckpts)?
                    .iter()
                    .map(|(s, _)| s.to_string())
                    .collect();
                bail!(
                    "no checkpoint at step {step} in {} (available: {})",
                    ckpts.display(),
                    have.join(", ")
                );
            }
            let (m, parts) = checkpoint::read(&p)?;
            (p, m, parts)
        }
    };
    let device = device::open(config.backend)?;
    let model = config.model.init(meta.shape, meta.classes.len(), &device)?;
    let model = classifier::load_model(model, &parts)?.valid();
    Ok(Loaded {
        model,
        meta,
        config,
        device,
        checkpoint: path,
    })
}

/// `fovea eval`: test metrics of a checkpoint, on the run's test set or another dataset.
pub fn eval(
    dir: &Path,
    which: &str,
    dataset: Option<&str>,
    data_dir: Option<&Path>,
    backend: Option<BackendKind>,
) -> Result<(Loaded, metrics::Evaluation)> {
    let loaded = load_run(dir, which, backend)?;
    let mut data_cfg = loaded.config.data.clone();
    if let Some(name) = dataset {
        data::check_dataset_name(name).map_err(|e| anyhow::anyhow!("--dataset {e}"))?;
        data_cfg.dataset = name.to_string();
        data_cfg.path = None;
    }
    if let Some(d) = data_dir {
        data_cfg.path = Some(d.to_path_buf());
    }
    let data = data::load(&data_cfg, loaded.config.seed, false)?;
    if data.test.shape != loaded.meta.shape
        || data.source.classes.len() != loaded.meta.classes.len()
    {
        bail!(
            "dataset `{}` has {} images in {} classes; the model takes {} images in {} classes",
            data_cfg.dataset,
            data.test.shape,
            data.source.classes.len(),
            loaded.meta.shape,
            loaded.meta.classes.len()
        );
    }
    let e = classifier::evaluate(
        &loaded.model,
        &data.test,
        &loaded.meta.normalizer,
        loaded.config.train.eval_batch_size,
        loaded.meta.classes.len(),
        &loaded.device,
    )?;
    Ok((loaded, e))
}

/// One prediction: the file and its top classes with probabilities.
#[derive(Debug, serde::Serialize)]
pub struct Prediction {
    pub file: String,
    pub top: Vec<(String, f32)>,
}

/// `fovea predict`: top-k classes for image files, converted to the model's channels and size.
pub fn predict(loaded: &Loaded, files: &[PathBuf], top_k: usize) -> Result<Vec<Prediction>> {
    let shape = loaded.meta.shape;
    let mut pixels = Vec::with_capacity(files.len() * shape.pixels());
    for f in files {
        pixels.extend(data::folder::decode(f, shape)?);
    }
    let set = ImageSet::new(shape, pixels, vec![0; files.len()])?;
    let mut out = Vec::new();
    let mut names = files.iter();
    for batch in eval_batches(
        &set,
        loaded.config.train.eval_batch_size,
        &loaded.meta.normalizer,
    ) {
        for probs in classifier::probabilities(&loaded.model, batch.images, shape, &loaded.device)?
        {
            let mut ranked: Vec<(usize, f32)> = probs.into_iter().enumerate().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            let top = ranked
                .into_iter()
                .take(top_k.max(1))
                .map(|(i, p)| (loaded.meta.classes[i].clone(), p))
                .collect();
            out.push(Prediction {
                file: names
                    .next()
                    .expect("one name per image")
                    .display()
                    .to_string(),
                top,
            });
        }
    }
    Ok(out)
}
