//! Drawing images from a trained GAN run: `fovea generate` writes them to files, and
//! `[data.synthetic]` adds them to another run's training set.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;

use super::runs::Opened;
use crate::data::batch::mix;
use crate::data::idx;
use crate::data::{self, ImageSet, Splits, SyntheticConfig, SyntheticSource};
use crate::device::BackendKind;
use crate::fsio;
use crate::models::ModelConfig;
use crate::models::gan as gan_model;
use crate::tasks::gan;
use crate::tasks::records::load_module;
use crate::train::checkpoint::CheckpointMeta;

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
    fsio::check_output_dir(out).context("--out")?;
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
    fsio::new_output_dir(out).context("--out")?;
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
        let pick = |m: &ModelConfig| match m {
            ModelConfig::Gan(gan) => Some(gan.clone()),
            _ => None,
        };
        let (run, gan) =
            Opened::open_as(dir, which, backend, pick, "only a gan run has a generator")?;
        let (meta, device) = (run.meta, run.device);
        let (g, _) = gan.init(meta.shape, meta.classes.len(), &device)?;
        // With a moving average the average is the generator that the run evaluated.
        let ema = run.config.train.gan.as_ref().map_or(0.0, |g| g.ema);
        let g = if ema > 0.0 {
            let ema = load_module(g.valid(), &run.parts, gan::EMA_PART)?;
            gan::standing(
                &ema,
                meta.classes.len(),
                run.config.seed,
                &device.clone().autodiff(),
            )
        } else {
            load_module(g, &run.parts, "generator")?.valid()
        };
        Ok(Self {
            g,
            meta,
            checkpoint: run.checkpoint,
            seed: run.config.seed,
            batch: run.config.train.eval_batch_size,
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
