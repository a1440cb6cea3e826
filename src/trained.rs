//! Using a trained run: load a checkpoint's model, evaluate it on a test set, classify images.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;

use crate::config::Config;
use crate::config::run_config;
use crate::data::batch::eval_batches;
use crate::data::{self, ImageSet};
use crate::device::{self, BackendKind};
use crate::models::Model;
use crate::tasks::classify::{self, Evaluation};
use crate::train::checkpoint::{self, CheckpointMeta};
use crate::train::{Part, run};

/// A checkpoint found in a run folder: its path, its meta and its parts.
type Found = (PathBuf, CheckpointMeta, Vec<Part>);

/// A trained model read back from a run folder, for eval and predict.
pub struct Loaded {
    pub model: Model,
    pub meta: CheckpointMeta,
    pub config: Config,
    pub device: Device,
    pub checkpoint: PathBuf,
}

/// Finds `which` checkpoint of a run: `best`, `last` or a step number.
fn find_checkpoint(dir: &Path, which: &str) -> Result<Found> {
    let ckpts = dir.join(run::CHECKPOINTS);
    let newest = || -> Result<Found> {
        checkpoint::newest_intact::<CheckpointMeta>(&ckpts)?
            .with_context(|| format!("{} has no checkpoint", ckpts.display()))
    };
    let read = |p: PathBuf| -> Result<Found> {
        let (m, parts) = checkpoint::read(&p)?;
        Ok((p, m, parts))
    };
    match which {
        "last" => newest(),
        "best" => {
            let best = ckpts.join(checkpoint::BEST);
            if best.exists() {
                read(best)
            } else {
                eprintln!(
                    "note: {} has no best checkpoint (no validation set?); using the last one",
                    ckpts.display()
                );
                newest()
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
            read(p)
        }
    }
}

/// Loads a run's model from `which` checkpoint, on `backend` if one is given.
pub fn load_run(dir: &Path, which: &str, backend: Option<BackendKind>) -> Result<Loaded> {
    let mut config = run_config(dir)?;
    if let Some(b) = backend {
        config.backend = b;
    }
    let (path, meta, parts) = find_checkpoint(dir, which)?;
    let device = device::open(config.backend)?;
    let model = config.model.init(meta.shape, meta.classes.len(), &device)?;
    let model = classify::load_model(model, &parts)?.valid();
    Ok(Loaded {
        model,
        meta,
        config,
        device,
        checkpoint: path,
    })
}

/// `fovea eval`: test metrics of a checkpoint, on the run's test set or another dataset's.
pub fn eval(
    dir: &Path,
    which: &str,
    dataset: Option<&str>,
    data_dir: Option<&Path>,
    backend: Option<BackendKind>,
) -> Result<(Loaded, Evaluation)> {
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
    let data = data::load(&data_cfg, loaded.config.seed)?;
    if let Some(why) = &data.source.fallback {
        eprintln!("warning: {why}");
    }
    if data.test.shape != loaded.meta.shape
        || data.source.classes.len() != loaded.meta.classes.len()
    {
        bail!(
            "dataset `{}` has {} images in {} classes; the model takes {} images in {} classes",
            data.source.dataset,
            data.test.shape,
            data.source.classes.len(),
            loaded.meta.shape,
            loaded.meta.classes.len()
        );
    }
    let e = classify::evaluate(
        &loaded.model,
        &data.test,
        &loaded.meta.normalizer,
        loaded.config.train.eval_batch_size,
        loaded.meta.classes.len(),
        loaded.config.seed,
        &loaded.device,
    )?;
    Ok((loaded, e))
}

/// One prediction: the file and its top classes with probabilities.
#[derive(Debug, serde::Serialize)]
pub struct Prediction {
    pub file: String,
    pub top: Vec<(String, f32)>,
    /// With an early exit: the time step the decision was read at, of `steps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at_step: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
}

/// `fovea predict`: top-k classes for image files, converted to the model's channels and size.
/// With `exit_margin` (spiking models only), each image's decision is read at the first time
/// step where its top two probabilities differ by at least that much.
pub fn predict(
    loaded: &Loaded,
    files: &[PathBuf],
    top_k: usize,
    exit_margin: Option<f64>,
) -> Result<Vec<Prediction>> {
    let spiking = match (&loaded.model, exit_margin) {
        (_, None) => None,
        (Model::CnnLif(m), Some(margin)) => {
            if !(0.0..=1.0).contains(&margin) {
                bail!("--exit-margin must be in [0, 1] (got {margin})");
            }
            Some((m, margin))
        }
        (_, Some(_)) => bail!(
            "--exit-margin applies to spiking models (kind = \"cnn-lif\"); this run's model is `{}`",
            loaded.config.model.kind()
        ),
    };
    // Poisson spike coding draws from the device RNG: the same run, the same predictions.
    loaded.device.seed(loaded.config.seed);
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
        let decided: Vec<(Vec<f32>, Option<usize>)> = match spiking {
            Some((m, margin)) => {
                classify::probabilities_early_exit(m, batch.images, shape, margin, &loaded.device)?
                    .into_iter()
                    .map(|(p, step)| (p, Some(step)))
                    .collect()
            }
            None => classify::probabilities(&loaded.model, batch.images, shape, &loaded.device)?
                .into_iter()
                .map(|p| (p, None))
                .collect(),
        };
        for (probs, step) in decided {
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
                decided_at_step: step,
                steps: spiking.map(|(m, _)| m.steps()),
            });
        }
    }
    Ok(out)
}
