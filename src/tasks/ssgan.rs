//! The semi-supervised GAN task (Salimans et al., 2016): the discriminator is the classifier.
//! An epoch passes over every training image without its label; each step also takes a batch of
//! the labelled images (cycling through them in an order drawn per pass from the seed and the
//! step, so that resume is exact) and a generated batch.
//!
//! With class logits l and Z = Σₖ exp lₖ, the discriminator's probability that an image is real
//! is D = Z / (Z + 1) (the generated class's logit is fixed at 0). The classifier minimizes
//!
//!   cross-entropy(labelled) + w · ( −log D(unlabelled) − log(1 − D(generated)) )
//!
//! where −log D = softplus(log Z) − log Z and −log(1 − D) = softplus(log Z); the generator
//! minimizes feature matching (or the non-saturating loss). What is evaluated, saved as the
//! `model` part and read by `predict`/`eval`/`compare` is the classifier.

use std::path::Path;

use anyhow::Result;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softplus};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::classify::{Classifier, correct_count, cross_entropy, to_tensors};
use super::config::Settings;
use super::gan::{generate, to_bytes};
use super::judge::normalize_pixels;
use super::records::{load_module, load_optim, module_part, optim_part};
use crate::data::batch::{Batch, Normalizer, epoch_order, make_batch, mix};
use crate::data::config::AugmentConfig;
use crate::data::{ImageSet, InputShape, Splits};
use crate::models::Model;
use crate::models::cnn::Cnn;
use crate::models::gan::Generator;
use crate::models::ssgan::{SsganConfig, log_partition};
use crate::report::plots;
use crate::run_files::Curve;
use crate::train::config::{SsganGeneratorLoss, SsganTraining};
use crate::train::task::{Part, Report, StepStats, Task, TaskSpec};

pub const SAMPLES: &str = "samples.png";
pub const EPOCH_SAMPLES: &str = "samples";
/// Generated images per class row of the sample grids.
const GRID_COLUMNS: usize = 8;

pub struct SsganTask {
    /// The discriminator, a `cnn` classifier, with its optimizer.
    classifier: Classifier,
    g: Option<Generator>,
    opt_g: ModuleOptimizer,
    lr_g: f64,
    training: SsganTraining,
    /// The labelled training images.
    labelled: ImageSet,
    /// `data.augment`, applied to the labelled batches as to the unlabelled ones.
    augment: AugmentConfig,
    /// The normalization's lookup tables, for the labelled batches.
    tables: Vec<[f32; 256]>,
    normalizer: Normalizer,
    /// The configured batch size: the step number × it is the position in the labelled cycle.
    batch_size: usize,
    device: Device,
    shape: InputShape,
    classes: Vec<String>,
    seed: u64,
}

/// The classifier's loss and its parts, from its logits on labelled images `[b, k]` with
/// their labels `[b]`, on unlabelled ones and on generated ones.
pub struct KPlusOne {
    /// cross-entropy + w · unsupervised: what the classifier minimizes.
    pub total: Tensor<1>,
    /// The labelled images' mean cross-entropy over the K classes.
    pub cross_entropy: Tensor<1>,
    /// mean −log D(unlabelled) + mean −log(1 − D(generated)).
    pub unsupervised: Tensor<1>,
    /// D of each unlabelled and each generated image.
    pub d_real: Tensor<1>,
    pub d_fake: Tensor<1>,
}

impl KPlusOne {
    pub fn new(
        labelled: Tensor<2>,
        labels: Tensor<1, Int>,
        unlabelled: Tensor<2>,
        generated: Tensor<2>,
        w: f64,
    ) -> Self {
        let cross_entropy = cross_entropy(labelled, labels);
        let lu = log_partition(unlabelled); // [b]
        let lg = log_partition(generated); // [b']
        let real = (softplus(lu.clone(), 1.0) - lu.clone()).mean();
        let fake = softplus(lg.clone(), 1.0).mean();
        let unsupervised = real + fake;
        Self {
            total: cross_entropy.clone() + unsupervised.clone().mul_scalar(w),
            cross_entropy,
            unsupervised,
            // Z / (Z + 1) = sigmoid(log Z)
            d_real: sigmoid(lu),
            d_fake: sigmoid(lg),
        }
    }
}

/// Feature matching: the squared distance between the mean of the `real` features `[b, f]`
/// (held fixed) and of the `generated` ones `[b', f]`, averaged over the f features.
pub fn feature_matching(real: Tensor<2>, generated: Tensor<2>) -> Tensor<1> {
    let m1 = real.detach().mean_dim(0); // [1, f]
    let m2 = generated.mean_dim(0); // [1, f]
    (m1 - m2).powi_scalar(2).mean()
}

/// The classifier's network (a `cnn`, by construction).
fn cnn(model: &Model) -> &Cnn {
    match model {
        Model::Cnn(m) => m,
        _ => unreachable!("an ssgan classifier is a cnn"),
    }
}

impl SsganTask {
    pub fn new(
        s: &Settings,
        cfg: &SsganConfig,
        data: &Splits,
        normalizer: &Normalizer,
        device: Device,
    ) -> Result<Self> {
        let shape = data.train.shape;
        let classes = data.source.classes.clone();
        let (g, d) = cfg.init(shape, classes.len(), &device)?;
        let [(opt_g, lr_g), (opt_d, lr_d)] = s.adversarial_pair();
        Ok(Self {
            classifier: Classifier::new(
                Model::Cnn(d),
                opt_d,
                lr_d,
                device.clone(),
                shape,
                classes.clone(),
                s.seed,
            ),
            g: Some(g),
            opt_g,
            lr_g,
            training: s.train.ssgan.clone().unwrap_or_default(),
            labelled: data.train.clone(),
            augment: s.augment.clone(),
            tables: normalizer.tables(),
            normalizer: normalizer.clone(),
            batch_size: s.train.batch_size,
            device,
            shape,
            classes,
            seed: s.seed,
        })
    }

    pub fn g(&self) -> &Generator {
        self.g.as_ref().expect("generator present between steps")
    }

    /// `n` labelled images for `step`: positions step × batch_size … of an endless sequence of
    /// passes over the labelled set, each pass in its own order, augmented as the unlabelled
    /// images are (`data.augment`) with draws seeded by the step, so that resume is exact.
    fn labelled_batch(&self, step: u64, n: usize) -> Batch {
        let size = self.labelled.len();
        let start = step as usize * self.batch_size;
        let order_seed = mix(&[self.seed, 29]);
        let mut pass = usize::MAX;
        let mut order: Vec<usize> = Vec::new();
        let mut indices = Vec::with_capacity(n);
        for p in start..start + n {
            if p / size != pass {
                pass = p / size;
                order = epoch_order(size, order_seed, pass);
            }
            indices.push(order[p % size]);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(mix(&[self.seed, step, 31]));
        let augment = self.augment.is_on().then_some((&self.augment, &mut rng));
        make_batch(&self.labelled, &indices, &self.tables, augment, 0)
    }

    /// `x` with the classifier's training noise added (`input_noise`), drawn from the device's
    /// generator (seeded per step).
    fn noisy(&self, x: Tensor<4>) -> Tensor<4> {
        let sigma = self.training.input_noise;
        if sigma == 0.0 {
            return x;
        }
        let noise = Tensor::random(
            x.dims(),
            burn::tensor::Distribution::Normal(0.0, sigma),
            &self.device,
        );
        x + noise
    }

    /// Generator output in [−1, 1] → normalized images.
    fn normalized(&self, t: Tensor<4>) -> Tensor<4> {
        normalize_pixels(t.add_scalar(1.0).mul_scalar(0.5), &self.normalizer)
    }

    /// The classifier's step; returns (cross-entropy, correct labelled predictions, the
    /// unsupervised terms, mean D(unlabelled), mean D(generated)).
    pub fn d_step(
        &mut self,
        labelled: (Tensor<4>, Tensor<1, Int>),
        unlabelled: Tensor<4>,
        z: Tensor<2>,
        lr_factor: f64,
    ) -> [f64; 5] {
        let [b, _] = z.dims();
        let y0 = Tensor::<1, Int>::zeros([b], &self.device);
        let fake = self.noisy(self.normalized(self.g().forward(z, y0)).detach());
        let (x, y) = labelled;
        let (x, unlabelled) = (self.noisy(x), self.noisy(unlabelled));
        let w = self.training.unsupervised_weight;
        self.classifier.update(lr_factor, |model| {
            let logits = model.forward(x);
            let correct = correct_count(logits.clone(), y.clone()) as f64;
            let loss = KPlusOne::new(logits, y, model.forward(unlabelled), model.forward(fake), w);
            let stats = [
                loss.cross_entropy.into_scalar::<f64>(),
                correct,
                loss.unsupervised.into_scalar::<f64>(),
                loss.d_real.mean().into_scalar::<f64>(),
                loss.d_fake.mean().into_scalar::<f64>(),
            ];
            (loss.total, stats)
        })
    }

    /// The generator's step through the (updated) classifier; only the generator's weights
    /// move. Returns its loss.
    pub fn g_step(&mut self, unlabelled: Tensor<4>, z: Tensor<2>, lr: f64) -> f64 {
        let [b, _] = z.dims();
        let g = self.g.take().expect("generator present");
        let y0 = Tensor::<1, Int>::zeros([b], &self.device);
        let fake = self.noisy(self.normalized(g.forward(z, y0)));
        let unlabelled = self.noisy(unlabelled);
        let d = cnn(self.classifier.model());
        let loss = match self.training.generator_loss {
            SsganGeneratorLoss::FeatureMatching => {
                let (real, _) = d.penultimate(unlabelled);
                let (generated, _) = d.penultimate(fake);
                feature_matching(real, generated)
            }
            SsganGeneratorLoss::NonSaturating => {
                softplus(log_partition(d.forward(fake)).neg(), 1.0).mean()
            }
        };
        let value = loss.clone().into_scalar::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &g);
        self.g = Some(self.opt_g.step(lr, g, grads));
        value
    }

    /// Generated images from fixed noise, in rows by the class the classifier gives them
    /// (up to `GRID_COLUMNS` each).
    fn grid_rows(&self) -> Result<Vec<(String, Vec<Vec<u8>>)>> {
        let device = self.device.clone().without_autodiff();
        let g = self.g().valid();
        let model = self.classifier.model().valid();
        let n = self.classes.len() * GRID_COLUMNS * 2;
        let mut rows: Vec<(String, Vec<Vec<u8>>)> = self
            .classes
            .iter()
            .map(|c| (c.clone(), Vec::new()))
            .collect();
        for (t, _) in generate(&g, &vec![0; n], mix(&[self.seed, 17]), 64, &device) {
            let pred: Vec<i64> = model
                .forward(self.normalized(t.clone()))
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .map_err(|e| anyhow::anyhow!("cannot read the predictions: {e:?}"))?;
            let px = to_bytes(t)?;
            for (img, p) in px.chunks(self.shape.pixels()).zip(pred) {
                let row = &mut rows[p as usize].1;
                if row.len() < GRID_COLUMNS {
                    row.push(img.to_vec());
                }
            }
        }
        Ok(rows)
    }

    fn draw_grid(&self, path: &Path, title: &str) -> Result<()> {
        plots::image_grid(path, title, &self.grid_rows()?, self.shape, 2)
    }
}

impl Task for SsganTask {
    fn spec(&self) -> TaskSpec {
        let mut spec = self.classifier.spec();
        spec.train
            .extend(["unsupervised", "g_loss", "d_real", "d_fake"]);
        spec.learning_rates = vec![("lr_g", self.lr_g), ("lr_d", self.classifier.lr())];
        spec.curves.extend([
            Curve {
                file: "gan-loss.png",
                title: "Unsupervised loss of the classifier, and the generator's loss",
                y_label: "loss",
                metrics: vec!["unsupervised", "g_loss"],
            },
            Curve {
                file: "discriminator.png",
                title: "The classifier's mean probability of \"real\"",
                y_label: "probability",
                metrics: vec!["d_real", "d_fake"],
            },
        ]);
        spec
    }

    fn step(&mut self, batch: Batch, lr_factor: f64, step: u64) -> Result<StepStats> {
        // Dropout and noise draw from the device RNG, seeded per step so that resume is exact.
        self.device.seed(mix(&[self.seed, step, 13]));
        let count = batch.len();
        // the unlabelled batch: its labels are withheld, never read
        let (unlabelled, _) = to_tensors(batch, self.shape, &self.device);
        let labelled = to_tensors(self.labelled_batch(step, count), self.shape, &self.device);
        let z = self.g().noise(count, &self.device);
        let [ce, correct, unsup, d_real, d_fake] =
            self.d_step(labelled, unlabelled.clone(), z, lr_factor);
        let z = self.g().noise(count, &self.device);
        let g_loss = self.g_step(unlabelled, z, self.lr_g * lr_factor);
        let n = count as f64;
        Ok(StepStats {
            count,
            sums: vec![
                ("loss", ce * n),
                ("accuracy", correct),
                ("unsupervised", unsup * n),
                ("g_loss", g_loss * n),
                ("d_real", d_real * n),
                ("d_fake", d_fake * n),
            ],
        })
    }

    fn evaluate(
        &self,
        set: &ImageSet,
        normalizer: &Normalizer,
        batch_size: usize,
    ) -> Result<Report> {
        self.classifier.evaluate(set, normalizer, batch_size)
    }

    fn infer(&self, batch: Batch) -> Result<()> {
        self.classifier.infer(batch)
    }

    fn save(&self) -> Result<Vec<Part>> {
        let mut parts = self.classifier.save()?;
        parts.push(module_part("generator", self.g())?);
        parts.push(optim_part("optim_g", &self.opt_g)?);
        Ok(parts)
    }

    fn load(&mut self, parts: Vec<Part>) -> Result<()> {
        let g = load_module(
            self.g.take().expect("generator present"),
            &parts,
            "generator",
        )?;
        self.g = Some(g);
        self.opt_g = load_optim(&self.opt_g, &parts, "optim_g")?;
        self.classifier.load(parts)
    }

    fn parameter_count(&self) -> usize {
        self.classifier.parameter_count() + burn::module::Module::num_params(self.g())
    }

    fn epoch_end(&self, epoch: usize, run_dir: &Path) -> Result<()> {
        self.draw_grid(
            &run_dir
                .join(EPOCH_SAMPLES)
                .join(format!("epoch-{epoch:03}.png")),
            &format!("Generated after epoch {epoch}, in rows by the class the classifier gives"),
        )
    }

    fn write_figures(&self, test: &Report, run_dir: &Path) -> Result<()> {
        self.classifier.write_figures(test, run_dir)?;
        self.draw_grid(
            &run_dir.join(SAMPLES),
            "Generated (fixed noise), in rows by the class the classifier gives",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: &[f32], dims: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), dims), device)
    }

    fn close(t: Tensor<1>, want: f64) {
        let got = t.into_scalar::<f64>();
        assert!((got - want).abs() < 1e-5, "got {got}, want {want}");
    }

    #[test]
    fn the_k_plus_one_loss_matches_a_hand_computed_case() {
        let device = Device::flex();
        let ln3 = 3f32.ln();
        let half = 0.5f32.ln();
        // labelled: logits (0, ln 3), label 1: p = 3/4, cross-entropy ln 4/3.
        // unlabelled: the same logits, Z = 4, D = 4/5: −log D = ln 5/4.
        // generated: logits (ln ½, ln ½), Z = 1, D = ½: −log(1 − D) = ln 2.
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &device);
        let loss = KPlusOne::new(
            t2(&[0.0, ln3], [1, 2], &device),
            labels,
            t2(&[0.0, ln3], [1, 2], &device),
            t2(&[half, half], [1, 2], &device),
            0.5,
        );
        let (ce, real, fake) = ((4f64 / 3.0).ln(), 1.25f64.ln(), 2f64.ln());
        close(loss.cross_entropy, ce);
        close(loss.unsupervised, real + fake);
        close(loss.total, ce + 0.5 * (real + fake));
        close(loss.d_real, 0.8);
        close(loss.d_fake, 0.5);
    }

    #[test]
    fn labelled_batches_are_augmented_by_draws_of_their_step() {
        let config = crate::config::from_str(
            r#"
            [data]
            dataset = "sample"
            labels_per_class = 3
            [model]
            kind = "ssgan"
            blocks = [{ channels = 8, batch_norm = false }]
            hidden = [16]
            latent = 8
            g_channels = 8
            [train]
            batch_size = 8
            "#,
            "test",
        )
        .unwrap();
        let data = crate::data::load(&config.data, config.seed).unwrap();
        let normalizer = Normalizer::fit(&data.train);
        let crate::models::ModelConfig::Ssgan(cfg) = &config.model else {
            panic!("not an ssgan config")
        };
        let task = |augment: &AugmentConfig| {
            let s = Settings {
                model: &config.model,
                train: &config.train,
                eval: &config.eval,
                augment,
                seed: config.seed,
            };
            SsganTask::new(&s, cfg, &data, &normalizer, Device::flex()).unwrap()
        };
        let plain = task(&AugmentConfig::default());
        let shifted = task(&AugmentConfig {
            shift: 2,
            flip: false,
        });
        let (a, b) = (plain.labelled_batch(3, 8), shifted.labelled_batch(3, 8));
        // the same images in the same order, moved
        assert_eq!(a.labels, b.labels);
        assert_ne!(a.images, b.images, "the labelled batch was not augmented");
        // the draws are the step's: the same step, the same batch (resume is exact)
        assert_eq!(b.images, shifted.labelled_batch(3, 8).images);
    }

    #[test]
    fn feature_matching_compares_batch_means_and_moves_only_the_generated_side() {
        let device = Device::flex().autodiff();
        let real = t2(&[1.0, 2.0, 3.0, 4.0], [2, 2], &device).require_grad();
        let generated = t2(&[0.0, 0.0, 2.0, 2.0], [2, 2], &device).require_grad();
        // means (2, 3) and (1, 1): ((2 − 1)² + (3 − 1)²) / 2 = 2.5
        let loss = feature_matching(real.clone(), generated.clone());
        assert!((loss.clone().into_scalar::<f64>() - 2.5).abs() < 1e-6);
        let grads = loss.backward();
        // ∂/∂g_ij = −(m1_j − m2_j) · 2 / (f · b) = −(1, 2) / 2 for each row
        let g: Vec<f32> = generated
            .grad(&grads)
            .unwrap()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(g, vec![-0.5, -1.0, -0.5, -1.0]);
        assert!(real.grad(&grads).is_none(), "the real features moved");
    }
}
