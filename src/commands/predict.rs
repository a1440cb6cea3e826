//! Using a trained classifier: its test metrics on a test set (`fovea eval`), and its classes
//! for image files (`fovea predict`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::runs::{Loaded, load_run};
use crate::data::batch::eval_batches;
use crate::data::{self, ImageSet};
use crate::device::BackendKind;
use crate::models::cnn_lif::{CnnLif, Coding};
use crate::models::{Model, ModelConfig};
use crate::tasks::classify::{self, Evaluation};

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
    loaded.meta.check_data(
        &format!("dataset `{}`", data.source.dataset),
        data.test.shape,
        data.source.classes.len(),
    )?;
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
    let reader = Reader::new(loaded, exit_margin)?;
    let shape = loaded.meta.shape;
    let mut pixels = Vec::with_capacity(files.len() * shape.pixels());
    for f in files {
        pixels.extend(data::folder::decode(f, shape)?);
    }
    let decided = reader.classify(pixels, loaded.config.train.eval_batch_size)?;
    Ok(files
        .iter()
        .zip(decided)
        .map(|(file, d)| Prediction {
            file: file.display().to_string(),
            top: d.top(&loaded.meta.classes, top_k),
            decided_at_step: d.step,
            steps: reader.steps(),
        })
        .collect())
}

/// One image's class probabilities, and for a spiking model that stopped early, the time step
/// they were read at.
pub struct Decision {
    pub probabilities: Vec<f32>,
    pub step: Option<usize>,
}

impl Decision {
    /// The `k` most probable classes (at least one), most probable first.
    pub fn top(&self, classes: &[String], k: usize) -> Vec<(String, f32)> {
        let mut ranked: Vec<(usize, f32)> =
            self.probabilities.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
            .into_iter()
            .take(k.max(1))
            .map(|(i, p)| (classes[i].clone(), p))
            .collect()
    }
}

/// Reads a loaded classifier's decisions for images already in its shape: `predict` and `serve`.
pub struct Reader<'a> {
    loaded: &'a Loaded,
    spiking: Option<(&'a CnnLif, f64)>,
}

impl<'a> Reader<'a> {
    /// With `exit_margin` (spiking models only), each decision is read at the first time step
    /// where the top two probabilities differ by at least that much.
    pub fn new(loaded: &'a Loaded, exit_margin: Option<f64>) -> Result<Self> {
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
        Ok(Self { loaded, spiking })
    }

    /// Whether the model draws random spikes (Poisson coding): a decision then depends on the
    /// draws of the batch an image is read in, so `serve` reads each image alone, seeded by the
    /// run's seed, which makes its answer the one `fovea predict` gives the image alone.
    pub fn draws(&self) -> bool {
        matches!(&self.loaded.config.model, ModelConfig::CnnLif(c) if c.coding == Coding::Poisson)
    }

    /// A spiking model's time steps, when decisions may stop early.
    pub fn steps(&self) -> Option<usize> {
        self.spiking.map(|(m, _)| m.steps())
    }

    /// The decisions for `pixels` (whole images of the model's shape, one after another), in
    /// batches of `batch_size`.
    pub fn classify(&self, pixels: Vec<u8>, batch_size: usize) -> Result<Vec<Decision>> {
        let loaded = self.loaded;
        // Poisson spike coding draws from the device RNG: the same run, the same predictions.
        loaded.device.seed(loaded.config.seed);
        let shape = loaded.meta.shape;
        let n = pixels.len() / shape.pixels();
        let set = ImageSet::new(shape, pixels, vec![0; n])?;
        let mut out = Vec::with_capacity(n);
        for batch in eval_batches(&set, batch_size, &loaded.meta.normalizer) {
            match self.spiking {
                Some((m, margin)) => out.extend(
                    classify::probabilities_early_exit(
                        m,
                        batch.images,
                        shape,
                        margin,
                        &loaded.device,
                    )?
                    .into_iter()
                    .map(|(probabilities, step)| Decision {
                        probabilities,
                        step: Some(step),
                    }),
                ),
                None => out.extend(
                    classify::probabilities(&loaded.model, batch.images, shape, &loaded.device)?
                        .into_iter()
                        .map(|probabilities| Decision {
                            probabilities,
                            step: None,
                        }),
                ),
            }
        }
        Ok(out)
    }
}
