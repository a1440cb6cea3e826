//! Using a trained run: load a checkpoint's model, evaluate it on a test set, classify images,
//! draw images from a GAN.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;

use crate::config::Config;
use crate::config::run_config;
use crate::data::batch::eval_batches;
use crate::data::batch::mix;
use crate::data::idx;
use crate::data::{self, ImageSet, Splits, SyntheticConfig, SyntheticSource};
use crate::device::{self, BackendKind};
use crate::fsio;
use crate::models::gan as gan_model;
use crate::models::{Model, ModelConfig};
use crate::tasks::classify::{self, Evaluation};
use crate::tasks::gan;
use crate::tasks::records::load_module;
use crate::train::checkpoint::{self, CheckpointMeta};
use crate::train::{Part, run};

/// A checkpoint found in a run folder: its path, its meta and its parts.
pub(crate) type Found = (PathBuf, CheckpointMeta, Vec<Part>);

/// A trained model read back from a run folder, for eval and predict.
pub struct Loaded {
    pub model: Model,
    pub meta: CheckpointMeta,
    pub config: Config,
    pub device: Device,
    pub checkpoint: PathBuf,
}

/// Finds `which` checkpoint of a run: `best`, `last` or a step number.
pub(crate) fn find_checkpoint(dir: &Path, which: &str) -> Result<Found> {
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

/// What `fovea generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GenerateFormat {
    /// `OUT/<NN>-<class>/<i>.png`: an image folder fovea's folder loader reads back (the index
    /// prefix keeps the classes in the run's order, since the loader sorts folder names).
    Folder,
    /// `OUT/images-idx3-ubyte`, `OUT/labels-idx1-ubyte` and `OUT/classes.txt` (grayscale only).
    Idx,
}

/// What `fovea generate` wrote.
#[derive(Debug)]
pub struct Generated {
    pub checkpoint: PathBuf,
    pub images: usize,
    pub classes: Vec<String>,
}

/// `fovea generate`: `per_class` images of each class from a GAN run's generator, written to
/// `out` (which must not hold anything yet). The noise is seeded by `seed` (default: the run's).
pub fn generate(
    dir: &Path,
    which: &str,
    per_class: usize,
    out: &Path,
    format: GenerateFormat,
    seed: Option<u64>,
    backend: Option<BackendKind>,
) -> Result<Generated> {
    if per_class == 0 {
        bail!("--per-class must be at least 1");
    }
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "--out {}: the folder exists and is not empty; choose a new one (nothing is overwritten)",
            out.display()
        );
    }
    let drawn = Drawn::read(dir, which, backend)?;
    let (shape, k) = (drawn.meta.shape, drawn.meta.classes.len());
    if format == GenerateFormat::Idx && shape.channels != 1 {
        bail!("--format idx holds grayscale images; this run's are {shape}: use --format folder");
    }
    let labels: Vec<i64> = (0..k as i64)
        .flat_map(|c| std::iter::repeat_n(c, per_class))
        .collect();
    let pixels = drawn.pixels(&labels, mix(&[seed.unwrap_or(drawn.seed), 29]))?;
    let (path, meta) = (drawn.checkpoint, drawn.meta);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    match format {
        GenerateFormat::Folder => {
            let width = (k - 1).to_string().len();
            for (c, name) in meta.classes.iter().enumerate() {
                let safe: String = name
                    .chars()
                    .map(|ch| if ch == '/' || ch == '\\' { '_' } else { ch })
                    .collect();
                let class_dir = out.join(format!("{c:0width$}-{safe}"));
                std::fs::create_dir_all(&class_dir)
                    .with_context(|| format!("cannot create {}", class_dir.display()))?;
                for i in 0..per_class {
                    let n = c * per_class + i;
                    let img = &pixels[n * shape.pixels()..(n + 1) * shape.pixels()];
                    let file = class_dir.join(format!("{i:05}.png"));
                    data::folder::save_png(&file, img, shape)?;
                }
            }
        }
        GenerateFormat::Idx => {
            let n = labels.len();
            let bytes: Vec<u8> = labels.iter().map(|&l| l as u8).collect();
            fsio::write_atomic(
                &out.join("images-idx3-ubyte"),
                &idx::encode(&[n, shape.height, shape.width], &pixels),
            )?;
            fsio::write_atomic(&out.join("labels-idx1-ubyte"), &idx::encode(&[n], &bytes))?;
            fsio::write_atomic(
                &out.join("classes.txt"),
                (meta.classes.join("\n") + "\n").as_bytes(),
            )?;
        }
    }
    Ok(Generated {
        checkpoint: path,
        images: labels.len(),
        classes: meta.classes,
    })
}

/// A GAN run's generator, read from one of its checkpoints, ready to draw images.
struct Drawn {
    g: gan_model::Generator,
    meta: CheckpointMeta,
    checkpoint: PathBuf,
    /// The GAN run's seed and evaluation batch size.
    seed: u64,
    batch: usize,
    device: Device,
}

impl Drawn {
    /// On `backend`, or on the GAN run's own when none is given.
    fn read(dir: &Path, which: &str, backend: Option<BackendKind>) -> Result<Self> {
        let config = run_config(dir)?;
        let ModelConfig::Gan(gan) = &config.model else {
            bail!(
                "{} is a {} run; only a gan run has a generator",
                dir.display(),
                config.model.kind()
            );
        };
        let (checkpoint, meta, parts) = find_checkpoint(dir, which)?;
        let device = device::open(backend.unwrap_or(config.backend))?;
        let (g, _) = gan.init(meta.shape, meta.classes.len(), &device)?;
        // With a moving average the average is the generator that the run evaluated.
        let g = if gan.ema > 0.0 {
            let ema = load_module(g.valid(), &parts, gan::EMA_PART)?;
            gan::standing(
                &ema,
                meta.classes.len(),
                config.seed,
                &device.clone().autodiff(),
            )
        } else {
            load_module(g, &parts, "generator")?.valid()
        };
        Ok(Self {
            g,
            meta,
            checkpoint,
            seed: config.seed,
            batch: config.train.eval_batch_size,
            device,
        })
    }

    /// Pixel bytes of one image per label, image after image, from noise seeded by `seed`.
    fn pixels(&self, labels: &[i64], seed: u64) -> Result<Vec<u8>> {
        let mut pixels = Vec::with_capacity(labels.len() * self.meta.shape.pixels());
        for (t, _) in gan::generate(&self.g, labels, seed, self.batch, &self.device) {
            pixels.extend(gan::to_bytes(t)?);
        }
        Ok(pixels)
    }
}

/// `[data.synthetic]`: draws the generated images a run trains on and adds them to its training
/// set (or puts them in its place), recording where they came from in `data.source`. The noise
/// is seeded by the run's `seed`, so a resumed run trains on the same images.
pub fn add_synthetic(
    cfg: &SyntheticConfig,
    data: &mut Splits,
    seed: u64,
    backend: BackendKind,
) -> Result<()> {
    let Some(dir) = &cfg.generator else {
        return Ok(());
    };
    let key = || format!("data.synthetic.generator = {}", dir.display());
    let drawn = Drawn::read(dir, &cfg.checkpoint, Some(backend)).with_context(key)?;
    let (shape, classes) = (data.train.shape, &data.source.classes);
    if drawn.meta.shape != shape || &drawn.meta.classes != classes {
        bail!(
            "{}: its generator draws {} images of {:?}; the data has {} images of {:?}",
            key(),
            drawn.meta.shape,
            drawn.meta.classes,
            shape,
            classes
        );
    }
    // As many per class as ratio × that class's real images: the class balance is kept.
    let labels: Vec<i64> = data
        .train
        .class_counts(classes.len())
        .iter()
        .enumerate()
        .flat_map(|(c, &n)| std::iter::repeat_n(c as i64, (n as f64 * cfg.ratio).round() as usize))
        .collect();
    let synthetic_seed = mix(&[seed, 31]);
    let pixels = drawn.pixels(&labels, synthetic_seed)?;
    let real = data.train.len();
    let (mut images, mut all_labels) = if cfg.only {
        (Vec::new(), Vec::new())
    } else {
        // Moved out, not copied: the set is rebuilt below.
        (
            std::mem::take(&mut data.train.images),
            std::mem::take(&mut data.train.labels),
        )
    };
    images.extend(pixels);
    all_labels.extend(labels.iter().map(|&l| l as u32));
    data.train = ImageSet::new(shape, images, all_labels)?;
    data.source.train = data.train.len();
    data.source.synthetic = Some(SyntheticSource {
        generator: dir.display().to_string(),
        checkpoint: drawn.checkpoint.display().to_string(),
        step: drawn.meta.state.step,
        images: labels.len(),
        real: if cfg.only { 0 } else { real },
        seed: synthetic_seed,
    });
    Ok(())
}
