//! The GAN task: a conditional DCGAN trained in the shared loop. Each step trains the
//! discriminator on a real batch and a generated one (the generator's output detached), then the
//! generator on a fresh forward pass through the updated discriminator. Evaluation draws
//! `fid_samples` images (an equal number per class) and measures them in the feature space of a
//! fovea classifier, the judge: the FID against the evaluated set, the FID of real training
//! images against it (the floor), and GAN-test (the judge's accuracy on the generated images).

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, softplus};
use serde_json::{Map, json};

use super::classify::{host_f32, to_tensors};
use super::config::Settings;
use super::fid::{self, Gaussian};
use super::judge::{Judge, normalize_pixels};
use super::records::{load_module, load_pair, module_part, pair_parts};
use crate::data::batch::{Batch, Normalizer, mix, standard_normal};
use crate::data::{ImageSet, InputShape, Splits};
use crate::models::gan::{Discriminator, GanConfig, Generator};
use crate::models::{Model, params};
use crate::report::plots;
use crate::run_files::Curve;
use crate::train::config::{GanLoss, GanTraining};
use crate::train::optim::frozen;
use crate::train::task::{Goal, Part, Report, StepStats, Task, TaskSpec};

/// Images per class in the sample grids.
pub const GRID_COLUMNS: usize = 8;
pub const SAMPLES: &str = "samples.png";
pub const EPOCH_SAMPLES: &str = "samples";

pub struct GanTask {
    g: Option<Generator>,
    /// The moving average of the generator's weights (`ema` > 0), on the inference device.
    g_ema: Option<Generator>,
    d: Option<Discriminator>,
    opt_g: ModuleOptimizer,
    opt_d: ModuleOptimizer,
    /// The generator's and the discriminator's base learning rates.
    lr_g: f64,
    lr_d: f64,
    /// `[train.gan]`: the loss, the mode-seeking term, the moving average.
    training: GanTraining,
    /// Generated images per FID.
    fid_samples: usize,
    /// The autodiff training device.
    device: Device,
    shape: InputShape,
    classes: Vec<String>,
    seed: u64,
    /// Per-channel mean and std of the data's normalization (the discriminator reads
    /// normalized images).
    normalizer: Normalizer,
    judge: Judge,
    /// The judge's Gaussian of real training images: the FID floor's reference.
    reference: Gaussian,
    eval_batch: usize,
    /// Sample grids are drawn after the epochs that are validated (`train.eval_every`).
    grid_every: usize,
}

impl GanTask {
    pub fn new(
        s: &Settings,
        cfg: &GanConfig,
        data: &Splits,
        normalizer: &Normalizer,
        judge: Judge,
        device: Device,
    ) -> Result<Self> {
        let shape = data.train.shape;
        if !matches!(judge.model, Model::Cnn(_)) {
            bail!(
                "the judge {} is not a cnn run; FID needs a cnn classifier's features",
                judge.run.display()
            );
        }
        let (g, d) = cfg.init(shape, data.source.classes.len(), &device)?;
        let [(opt_g, lr_g), (opt_d, lr_d)] = s.adversarial_pair();
        let training = s.train.gan.clone().unwrap_or_default();
        let (fid_samples, eval_batch) = (s.eval.fid_samples(), s.train.eval_batch_size);
        let reference = judge
            .fit_set(&data.train, eval_batch, fid_samples)
            .context("the judge's features of the training images")?;
        Ok(Self {
            g_ema: (training.ema > 0.0).then(|| g.valid()),
            g: Some(g),
            d: Some(d),
            opt_g,
            opt_d,
            lr_g,
            lr_d,
            training,
            fid_samples,
            device,
            shape,
            classes: data.source.classes.clone(),
            seed: s.seed,
            normalizer: normalizer.clone(),
            judge,
            reference,
            eval_batch,
            grid_every: s.train.eval_every.max(1),
        })
    }

    pub fn g(&self) -> &Generator {
        self.g.as_ref().expect("generator present between steps")
    }

    pub fn d(&self) -> &Discriminator {
        self.d
            .as_ref()
            .expect("discriminator present between steps")
    }

    /// Generator output in [−1, 1] → images normalized by `n` (pixels (t + 1)/2, then
    /// (p − mean)/std per channel).
    fn normalized(t: Tensor<4>, n: &Normalizer) -> Tensor<4> {
        normalize_pixels(t.add_scalar(1.0).mul_scalar(0.5), n)
    }

    /// The discriminator's step on a real batch and a generated one; returns (d_loss, D(x),
    /// D(G(z))), the noise it drew and the generated images `G(z)` with their graph: the
    /// generator is unchanged until its own step, which differentiates through them.
    pub fn d_step(
        &mut self,
        x: Tensor<4>,
        y: Tensor<1, Int>,
        lr: f64,
    ) -> Result<([f64; 3], Tensor<2>, Tensor<4>)> {
        let [b, ..] = x.dims();
        let z = self.g().noise(b, &self.device);
        let images = self.g().forward(z.clone(), y.clone());
        let fake = Self::normalized(images.clone(), &self.normalizer).detach();
        let d = self.d.take().expect("discriminator present");
        let real = d.forward(x, y.clone()); // [b]
        let fake = d.forward(fake, y); // [b]
        let loss = match self.training.loss {
            GanLoss::Bce => {
                softplus(real.clone().neg(), 1.0).mean() + softplus(fake.clone(), 1.0).mean()
            }
            GanLoss::Hinge => {
                relu(real.clone().neg().add_scalar(1.0)).mean()
                    + relu(fake.clone().add_scalar(1.0)).mean()
            }
        };
        let stats = [
            loss.clone().into_scalar::<f64>(),
            sigmoid(real).mean().into_scalar::<f64>(),
            sigmoid(fake).mean().into_scalar::<f64>(),
        ];
        let grads = GradientsParams::from_grads(loss.backward(), &d);
        self.d = Some(self.opt_d.step(lr, d, grads));
        Ok((stats, z, images))
    }

    /// The generator's step on `images = G(z)` (with their graph): through the (updated)
    /// discriminator, whose weights are frozen meanwhile (their gradients are not computed);
    /// only the generator's weights move. With `mode_seeking` λ > 0 the loss gains
    /// λ / (mean|G(zᵢ) − G(zⱼ)| / mean|zᵢ − zⱼ| + 1e−5) over the batch's `pairs` of images of
    /// one class (`class_pairs` of its labels; no term without pairs). Returns g_loss (the
    /// adversarial part alone, comparable with or without the term).
    pub fn g_step(
        &mut self,
        z: Tensor<2>,
        images: Tensor<4>,
        y: Tensor<1, Int>,
        pairs: Option<(Vec<i64>, Vec<i64>)>,
        lr: f64,
    ) -> f64 {
        let g = self.g.take().expect("generator present");
        let fake = Self::normalized(images.clone(), &self.normalizer);
        let d = self.d.take().expect("discriminator present");
        let (d, score) = frozen(d, |d| d.forward(fake, y));
        self.d = Some(d);
        let adversarial = match self.training.loss {
            GanLoss::Bce => softplus(score.neg(), 1.0).mean(),
            GanLoss::Hinge => score.mean().neg(),
        };
        let value = adversarial.clone().into_scalar::<f64>();
        let loss = match pairs.filter(|_| self.training.mode_seeking > 0.0) {
            Some((first, second)) => {
                let index = |v: Vec<i64>| Tensor::<1, Int>::from_ints(v.as_slice(), &self.device);
                let (first, second) = (index(first), index(second));
                let ratio = mean_apart(images, &first, &second) / mean_apart(z, &first, &second);
                adversarial
                    + ratio
                        .add_scalar(1e-5)
                        .recip()
                        .mul_scalar(self.training.mode_seeking)
            }
            None => adversarial,
        };
        let grads = GradientsParams::from_grads(loss.backward(), &g);
        let g = self.opt_g.step(lr, g, grads);
        if let Some(ema) = self.g_ema.take() {
            self.g_ema = Some(moving_average(ema, &g, self.training.ema));
        }
        self.g = Some(g);
        value
    }

    /// The generator that is evaluated and drawn: the moving average, with batch-norm statistics
    /// of its own, when there is one.
    fn drawing_generator(&self) -> Generator {
        match &self.g_ema {
            Some(ema) => standing(ema, self.classes.len(), self.seed, &self.device),
            None => self.g().valid(),
        }
    }

    /// `n` images with labels `i mod classes`, from noise seeded by (run seed, `salt`).
    fn draw(&self, n: usize, salt: u64) -> Vec<(Tensor<4>, Vec<i64>)> {
        let k = self.classes.len() as i64;
        let labels: Vec<i64> = (0..n as i64).map(|i| i % k).collect();
        generate(
            &self.drawing_generator(),
            &labels,
            mix(&[self.seed, salt]),
            self.eval_batch,
            &self.device.clone().without_autodiff(),
        )
    }

    /// `GRID_COLUMNS` images per class from fixed noise, as bytes per class.
    fn grid_rows(&self) -> Result<Vec<(String, Vec<Vec<u8>>)>> {
        let k = self.classes.len();
        let mut rows: Vec<(String, Vec<Vec<u8>>)> = self
            .classes
            .iter()
            .map(|c| (c.clone(), Vec::new()))
            .collect();
        for (t, labels) in self.draw(k * GRID_COLUMNS, 17) {
            let px = to_bytes(t)?;
            for (img, &l) in px.chunks(self.shape.pixels()).zip(&labels) {
                rows[l as usize].1.push(img.to_vec());
            }
        }
        Ok(rows)
    }

    fn draw_grid(&self, path: &Path, title: &str) -> Result<()> {
        plots::image_grid(path, title, &self.grid_rows()?, self.shape, 2)
    }
}

/// The checkpoint part of the generator's moving average.
pub const EMA_PART: &str = "generator-ema";

/// Batches (of `STANDING_BATCH` images) that measure the moving average's batch-norm
/// statistics before it draws: with batch norm's momentum 0.1 the statistics it started from
/// keep a weight of 0.9⁶⁴ ≈ 0.1 %.
const STANDING_BATCHES: usize = 64;
const STANDING_BATCH: usize = 64;

/// The moving average with its batch norm's running statistics measured on itself
/// ("standing statistics", Brock et al., 2019; what PyTorch's `swa_utils.update_bn` does for
/// averaged weights): averaged weights give other activations than the ones the trained
/// generator's statistics were measured on. `STANDING_BATCHES` forward passes in training mode
/// on the autodiff `device`, labels cycling through the `classes`, noise from a host generator
/// seeded by the run's `seed`: the result depends on the averaged weights alone, and the task
/// and `fovea generate` get the same generator.
pub fn standing(ema: &Generator, classes: usize, seed: u64, device: &Device) -> Generator {
    use rand::SeedableRng;
    let g = ema.clone().train();
    let b = STANDING_BATCH;
    let labels: Vec<i64> = (0..b as i64).map(|i| i % classes.max(1) as i64).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix(&[seed, 37]));
    for _ in 0..STANDING_BATCHES {
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [b]), device);
        let z = host_normal(&mut rng, [b, g.latent()], device);
        drop(g.forward(z, y));
    }
    g.valid()
}

/// The mode-seeking term's pairs in a batch with these `labels`: each image of a class that has
/// two or more in the batch against the next of its class (the last against the first), as
/// (first, second) indices; `None` where no class has two. In-batch pairs (as in MSGAN, Mao et
/// al., 2019) cost no second pass of the generator.
fn class_pairs(labels: &[i64]) -> Option<(Vec<i64>, Vec<i64>)> {
    let mut classes: Vec<(i64, Vec<i64>)> = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        match classes.iter_mut().find(|(c, _)| *c == l) {
            Some((_, members)) => members.push(i as i64),
            None => classes.push((l, vec![i as i64])),
        }
    }
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for (_, members) in classes.iter().filter(|(_, m)| m.len() > 1) {
        first.extend_from_slice(members);
        second.extend(members.iter().cycle().skip(1).take(members.len()));
    }
    (!first.is_empty()).then_some((first, second))
}

/// mean|t[first] − t[second]| over the rows `first` and `second` of `t`.
fn mean_apart<const D: usize>(
    t: Tensor<D>,
    first: &Tensor<1, Int>,
    second: &Tensor<1, Int>,
) -> Tensor<1> {
    (t.clone().select(0, first.clone()) - t.select(0, second.clone()))
        .abs()
        .mean()
}

/// ema ← β·ema + (1 − β)·g for every trained weight of the two (same-config) generators, in
/// visiting order; `g` is the trained generator (on the autodiff device), `ema` its average on
/// the inference device. Batch norm's running statistics are not averaged: the average's are
/// measured on itself when it draws (`standing`).
fn moving_average(ema: Generator, g: &Generator, beta: f64) -> Generator {
    struct Blend {
        current: std::vec::IntoIter<Option<Tensor<1>>>,
        beta: f64,
    }
    impl burn::module::ModuleMapper for Blend {
        fn map_float<const D: usize>(
            &mut self,
            p: burn::module::Param<Tensor<D>>,
        ) -> burn::module::Param<Tensor<D>> {
            let Some(g) = self
                .current
                .next()
                .expect("the average and the generator have the same tensors")
            else {
                return p; // a running statistic
            };
            let beta = self.beta;
            p.map(|e| {
                let dims = e.dims();
                e.mul_scalar(beta) + g.reshape(dims).mul_scalar(1.0 - beta)
            })
        }
    }
    let current: Vec<Option<Tensor<1>>> = params(g)
        .into_iter()
        .map(|(t, trained)| trained.then(|| t.inner()))
        .collect();
    ema.map(&mut Blend {
        current: current.into_iter(),
        beta,
    })
}

/// Standard normal values of shape `dims` from the host generator `rng`, on `device`: the same
/// noise on every backend.
fn host_normal<const D: usize>(
    rng: &mut rand_chacha::ChaCha8Rng,
    dims: [usize; D],
    device: &Device,
) -> Tensor<D> {
    let v: Vec<f32> = (0..dims.iter().product())
        .map(|_| standard_normal(rng) as f32)
        .collect();
    Tensor::from_data(TensorData::new(v, dims), device)
}

/// Images of `labels` from a generator in evaluation mode, in batches of `batch`, as pixels in
/// [−1, 1] `[b, c, h, w]` with their labels. The noise comes from a host generator seeded by
/// `seed`, not from the device's: the same images on every backend and every call.
pub fn generate(
    g: &Generator,
    labels: &[i64],
    seed: u64,
    batch: usize,
    device: &Device,
) -> Vec<(Tensor<4>, Vec<i64>)> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    labels
        .chunks(batch.max(1))
        .map(|chunk| {
            let b = chunk.len();
            let y = Tensor::<1, Int>::from_data(TensorData::new(chunk.to_vec(), [b]), device);
            let z = host_normal(&mut rng, [b, g.latent()], device);
            (g.forward(z, y), chunk.to_vec())
        })
        .collect()
}

/// Generator output in [−1, 1] → pixel bytes, image after image.
pub fn to_bytes(t: Tensor<4>) -> Result<Vec<u8>> {
    let px = host_f32(
        t.add_scalar(1.0).mul_scalar(127.5).clamp(0.0, 255.0),
        "generated images",
    )?;
    Ok(px.iter().map(|v| v.round() as u8).collect())
}

impl Task for GanTask {
    fn spec(&self) -> TaskSpec {
        TaskSpec {
            train: vec!["d_loss", "g_loss", "d_real", "d_fake"],
            eval: vec!["fid", "fid_floor", "gan_test"],
            select: ("fid", Goal::Min),
            learning_rates: vec![("lr_g", self.lr_g), ("lr_d", self.lr_d)],
            curves: vec![
                Curve {
                    file: "gan-loss.png",
                    title: "GAN losses",
                    y_label: "loss",
                    metrics: vec!["d_loss", "g_loss"],
                },
                Curve {
                    file: "discriminator.png",
                    title: "Discriminator's mean probability of \"real\"",
                    y_label: "probability",
                    metrics: vec!["d_real", "d_fake"],
                },
                Curve {
                    file: "fid.png",
                    title: "FID in the judge's feature space (validation)",
                    y_label: "FID",
                    metrics: vec!["fid", "fid_floor"],
                },
            ],
        }
    }

    fn step(&mut self, batch: Batch, lr_factor: f64, step: u64) -> Result<StepStats> {
        // Noise is drawn from the device RNG, seeded per step so that resume is exact.
        self.device.seed(mix(&[self.seed, step, 11]));
        let count = batch.len();
        let pairs = class_pairs(&batch.labels);
        let (x, y) = to_tensors(batch, self.shape, &self.device);
        let ([d_loss, d_real, d_fake], z, images) =
            self.d_step(x, y.clone(), self.lr_d * lr_factor)?;
        let g_loss = self.g_step(z, images, y, pairs, self.lr_g * lr_factor);
        let n = count as f64;
        Ok(StepStats {
            count,
            sums: vec![
                ("d_loss", d_loss * n),
                ("g_loss", g_loss * n),
                ("d_real", d_real * n),
                ("d_fake", d_fake * n),
            ],
        })
    }

    fn evaluate(&self, set: &ImageSet, _: &Normalizer, _: usize) -> Result<Report> {
        let target = self.judge.fit_set(set, self.eval_batch, usize::MAX)?;
        let n = self.fid_samples;
        let (mut features, mut dim, mut correct) = (Vec::new(), 0, 0usize);
        for (t, labels) in self.draw(n, 23) {
            let t = t.to_device(&self.judge.device);
            let (f, d, pred) = self
                .judge
                .read(Self::normalized(t, &self.judge.normalizer))?;
            features.extend(f);
            dim = d;
            correct += pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
        }
        let generated = Gaussian::fit(&features, dim)?;
        let mut details = Map::new();
        details.insert("judge".into(), json!(self.judge.run.display().to_string()));
        details.insert("fid_generated_images".into(), json!(n));
        details.insert("samples".into(), json!(SAMPLES));
        Ok(Report {
            count: set.len(),
            metrics: [
                ("fid".to_string(), fid::frechet(&generated, &target)),
                (
                    "fid_floor".to_string(),
                    fid::frechet(&self.reference, &target),
                ),
                ("gan_test".to_string(), correct as f64 / n.max(1) as f64),
            ]
            .into(),
            details,
        })
    }

    fn infer(&self, batch: Batch) -> Result<()> {
        let device = self.device.clone().without_autodiff();
        let (_, y) = to_tensors(batch, self.shape, &device);
        let [b] = y.dims();
        let z = self.g().noise(b, &device);
        // the moving average as it is kept (drawing measures its statistics first)
        let g = self.g_ema.clone().unwrap_or_else(|| self.g().valid());
        let _: f32 = g.forward(z, y).sum().into_scalar::<f32>();
        Ok(())
    }

    fn save(&self) -> Result<Vec<Part>> {
        let mut parts = pair_parts(self.g(), self.d(), &self.opt_g, &self.opt_d)?;
        if let Some(ema) = &self.g_ema {
            parts.push(module_part(EMA_PART, ema)?);
        }
        Ok(parts)
    }

    fn load(&mut self, parts: Vec<Part>) -> Result<()> {
        load_pair(
            &mut self.g,
            &mut self.d,
            &mut self.opt_g,
            &mut self.opt_d,
            &parts,
        )?;
        if let Some(ema) = self.g_ema.take() {
            self.g_ema = Some(load_module(ema, &parts, EMA_PART)?);
        }
        Ok(())
    }

    fn parameter_count(&self) -> usize {
        self.g().num_params() + self.d().num_params()
    }

    fn epoch_end(&self, epoch: usize, run_dir: &Path) -> Result<()> {
        if !epoch.is_multiple_of(self.grid_every) {
            return Ok(());
        }
        self.draw_grid(
            &run_dir
                .join(EPOCH_SAMPLES)
                .join(format!("epoch-{epoch:03}.png")),
            &format!("Generated after epoch {epoch} (fixed noise, one row per class)"),
        )
    }

    fn write_figures(&self, test: &Report, run_dir: &Path) -> Result<()> {
        let fid = test.metrics.get("fid").copied().unwrap_or(f64::NAN);
        self.draw_grid(
            &run_dir.join(SAMPLES),
            &format!("Generated (fixed noise, one row per class) — test FID {fid:.2}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::AdamConfig;

    use super::*;
    use crate::models::Model;
    use crate::models::cnn::CnnConfig;
    use std::path::PathBuf;

    /// The trainable weights of a module on an autodiff device (not BatchNorm's running
    /// statistics, which any forward pass in training mode updates).
    fn weights<M: Module>(m: &M) -> Vec<f32> {
        let w = crate::models::param_values(m, true);
        assert!(!w.is_empty());
        w
    }

    /// Standard normal values from a host generator seeded by `seed` (the device's is shared by
    /// the tests that run beside this one).
    fn seeded_normal<const D: usize>(dims: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
        use rand::SeedableRng;
        host_normal(
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            dims,
            device,
        )
    }

    fn task() -> GanTask {
        let shape = InputShape {
            channels: 1,
            height: 12,
            width: 12,
        };
        let cfg = GanConfig {
            g_channels: 8,
            d_channels: 8,
            latent: 8,
            embed: 4,
        };
        let device = Device::flex().autodiff();
        device.seed(5);
        let (g, d) = cfg.init(shape, 3, &device).unwrap();
        let plain = Device::flex();
        let judge = CnnConfig::default().init(shape, 3, &plain).unwrap().valid();
        let adam = || AdamConfig::new().with_beta_1(0.5).init();
        GanTask {
            g_ema: None,
            g: Some(g),
            d: Some(d),
            opt_g: adam(),
            opt_d: adam(),
            lr_g: 2e-4,
            lr_d: 2e-4,
            training: GanTraining::default(),
            fid_samples: 10_000,
            device,
            shape,
            classes: vec!["a".into(), "b".into(), "c".into()],
            seed: 1,
            normalizer: Normalizer {
                mean: vec![0.3],
                std: vec![0.4],
            },
            judge: Judge {
                model: Model::Cnn(judge),
                normalizer: Normalizer {
                    mean: vec![0.3],
                    std: vec![0.4],
                },
                run: PathBuf::from("test"),
                device: plain,
            },
            reference: Gaussian::fit(&[0.0; 6], 2).unwrap(),
            eval_batch: 16,
            grid_every: 1,
        }
    }

    #[test]
    fn the_discriminator_step_moves_only_d_and_the_generator_step_only_g() {
        let mut t = task();
        let x = seeded_normal([6, 1, 12, 12], 1, &t.device);
        let y =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 0, 1, 2], [6]), &t.device);
        let (g0, d0) = (weights(t.g()), weights(t.d()));
        let (stats, z, images) = t.d_step(x.clone(), y.clone(), 1e-3).unwrap();
        assert!(stats.iter().all(|v| v.is_finite()), "{stats:?}");
        let (g1, d1) = (weights(t.g()), weights(t.d()));
        assert_eq!(g0, g1, "the discriminator step changed the generator");
        assert_ne!(
            d0, d1,
            "the discriminator step left the discriminator unchanged"
        );
        let pairs = class_pairs(&[0, 1, 2, 0, 1, 2]);
        let g_loss = t.g_step(z, images, y.clone(), pairs, 1e-3);
        assert!(g_loss.is_finite());
        let (g2, d2) = (weights(t.g()), weights(t.d()));
        assert_ne!(g1, g2, "the generator step left the generator unchanged");
        let moved: Vec<(usize, f32, f32)> = d1
            .iter()
            .zip(&d2)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (i, *a, *b))
            .collect();
        assert!(
            moved.is_empty(),
            "the generator step changed the discriminator ({} of {}): {:?}",
            moved.len(),
            d1.len(),
            &moved[..moved.len().min(8)]
        );
        // frozen in the generator's step only: the next discriminator step trains it again
        t.d_step(x, y, 1e-3).unwrap();
        assert_ne!(d2, weights(t.d()), "the discriminator stayed frozen");
    }

    #[test]
    fn the_mode_seeking_term_moves_the_generator_and_only_it() {
        // Both start from the same weights, whatever other tests draw from the shared device
        // generator meanwhile.
        let start = task().save().unwrap();
        let after = |lambda: f64, labels: &[i64]| {
            let mut t = task();
            t.load(start.clone()).unwrap();
            t.training.mode_seeking = lambda;
            let n = labels.len();
            let z = seeded_normal([n, 8], 2, &t.device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [n]), &t.device);
            let d0 = weights(t.d());
            let images = t.g().forward(z.clone(), y.clone());
            let g_loss = t.g_step(z, images, y, class_pairs(labels), 1e-3);
            assert_eq!(d0, weights(t.d()), "the generator step changed D");
            (g_loss, weights(t.g()))
        };
        let paired = &[0, 1, 2, 0, 1, 2];
        let (plain_loss, plain) = after(0.0, paired);
        let (seeking_loss, seeking) = after(1.0, paired);
        // g_loss is the adversarial part alone: the same before the update.
        assert_eq!(plain_loss, seeking_loss);
        assert_ne!(
            plain, seeking,
            "the mode-seeking term did not reach the generator"
        );
        // a batch with no two images of one class has no pairs, hence no term
        let single = &[0, 1, 2];
        assert_eq!(after(0.0, single), after(1.0, single));
    }

    #[test]
    fn mode_seeking_pairs_each_image_with_the_next_of_its_class() {
        assert_eq!(
            class_pairs(&[3, 1, 3, 0, 3, 1]),
            Some((vec![0, 2, 4, 1, 5], vec![2, 4, 0, 5, 1]))
        );
        assert_eq!(class_pairs(&[0, 1, 2]), None);
        assert_eq!(class_pairs(&[]), None);
    }

    #[test]
    fn the_moving_average_follows_the_generator_by_its_decay_and_draws_with_its_own_statistics() {
        let mut t = task();
        let beta = 0.75;
        t.training.ema = beta;
        t.g_ema = Some(t.g().valid());
        // the trained weights (not batch norm's statistics) of a generator kept for inference
        let trained = |g: &Generator| weights(&g.clone().train());
        let before = weights(t.g());
        let z = seeded_normal([6, 8], 4, &t.device);
        let y =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 0, 1, 2], [6]), &t.device);
        let images = t.g().forward(z.clone(), y.clone());
        t.g_step(z, images, y, class_pairs(&[0, 1, 2, 0, 1, 2]), 1e-2);
        let after = weights(t.g());
        let ema = t.g_ema.clone().unwrap();
        let averaged = trained(&ema);
        assert_eq!(averaged.len(), before.len());
        assert_ne!(before, after);
        let worst = (0..averaged.len())
            .map(|i| {
                (averaged[i] - (beta as f32 * before[i] + (1.0 - beta as f32) * after[i])).abs()
            })
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "the average is off by {worst}");
        // what is drawn: the average's weights, with batch-norm statistics measured on itself
        let drawn = t.drawing_generator();
        assert_eq!(trained(&drawn), averaged);
        let all = |g: &Generator| crate::models::flat_params(g);
        assert_ne!(
            all(&drawn),
            all(&ema),
            "the statistics were not measured again"
        );
        assert_eq!(
            all(&drawn),
            all(&t.drawing_generator()),
            "not deterministic"
        );
        // a checkpoint carries the average
        let parts = t.save().unwrap();
        let mut fresh = task();
        fresh.training.ema = beta;
        fresh.g_ema = Some(fresh.g().valid());
        fresh.load(parts).unwrap();
        assert_eq!(trained(fresh.g_ema.as_ref().unwrap()), averaged);
        assert_eq!(all(&fresh.drawing_generator()), all(&drawn));
    }

    #[test]
    fn generated_images_map_to_the_normalized_space() {
        // −1 → pixel 0 → (0 − 0.3)/0.4; 1 → pixel 1 → (1 − 0.3)/0.4.
        let n = Normalizer {
            mean: vec![0.3],
            std: vec![0.4],
        };
        let t = Tensor::<4>::from_data(
            TensorData::new(vec![-1.0f32, 1.0], [1, 1, 1, 2]),
            &Device::flex(),
        );
        let v: Vec<f32> = GanTask::normalized(t, &n)
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        assert!(
            (v[0] + 0.75).abs() < 1e-6 && (v[1] - 1.75).abs() < 1e-6,
            "{v:?}"
        );
    }

    #[test]
    fn evaluation_reports_fid_and_gan_test_and_draws_the_same_images_each_time() {
        let mut t = task();
        t.fid_samples = 30;
        let set = ImageSet::new(
            t.shape,
            (0..20 * 144).map(|i| (i * 7 % 256) as u8).collect(),
            (0..20).map(|i| i % 3).collect(),
        )
        .unwrap();
        t.reference = t.judge.fit_set(&set, 8, usize::MAX).unwrap();
        let a = t.evaluate(&set, &t.normalizer.clone(), 8).unwrap();
        let b = t.evaluate(&set, &t.normalizer.clone(), 8).unwrap();
        assert_eq!(a.metrics, b.metrics);
        let gan_test = a.metrics["gan_test"];
        assert!((0.0..=1.0).contains(&gan_test));
        assert!(
            a.metrics["fid"] > 0.0 && a.metrics["fid_floor"] >= 0.0,
            "{:?}",
            a.metrics
        );
    }
}
