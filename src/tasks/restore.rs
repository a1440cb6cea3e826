//! The restoration task: clean training images are damaged on the fly (seeded by the run's seed
//! and the step, so resume is exact), and a U-Net learns to repair them with an L1 loss plus,
//! when `adversarial` > 0, the loss of a patch discriminator that tells repaired from clean
//! (pix2pix). One generator forward pass per step: the discriminator learns on its output
//! detached, then the generator on the updated discriminator's verdict (its weights frozen).
//!
//! Evaluation damages each image of a set the same way every time (seeded by its index) and
//! reports PSNR and SSIM of the damaged, the classically repaired and the network-repaired
//! images, and the judge classifier's accuracy on all of them and on the clean ones.

use std::path::Path;

use anyhow::Result;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::softplus;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, json};

use super::classify::host_f32;
use super::config::Settings;
use super::judge::Judge;
use super::records::{load_pair, pair_parts};
use crate::data::batch::{Batch, Normalizer, mix};
use crate::data::{ImageSet, InputShape, Splits};
use crate::models::restore::{PatchDiscriminator, RestoreConfig, UNet};
use crate::report::plots;
use crate::restore::classical::{self, baseline_name};
use crate::restore::{Damaged, Image, quality};
use crate::run_files::Curve;
use crate::train::optim::frozen;
use crate::train::task::{Goal, Part, Report, StepStats, Task, TaskSpec};

pub const PANELS: &str = "panels.png";
pub const EPOCH_PANELS: &str = "panels";

/// The evaluation metrics, in table order.
pub const EVAL_METRICS: [&str; 10] = [
    "psnr",
    "ssim",
    "psnr_damaged",
    "ssim_damaged",
    "psnr_baseline",
    "ssim_baseline",
    "accuracy_clean",
    "accuracy_damaged",
    "accuracy_baseline",
    "accuracy_restored",
];

/// The seed of evaluation image `index`'s damage: the same every epoch and in every run of
/// the same seed.
pub fn eval_damage_seed(seed: u64, index: usize) -> u64 {
    mix(&[seed, 41, index as u64])
}

/// The network's two inputs for damaged images of clean `shape`: `[b, c (+1 mask), h, w]` and
/// the image it corrects `[b, c, h, w]`: the damaged image brought to full size (bicubic) with
/// its hole filled harmonically (`classical::prefill`), on `device`.
pub fn network_input(
    cfg: &RestoreConfig,
    damaged: &[Damaged],
    shape: InputShape,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let prefilled: Vec<Image> = damaged
        .iter()
        .map(|d| classical::prefill(&cfg.damage, d))
        .collect();
    prefilled_input(cfg, damaged, &prefilled, shape, device)
}

/// `network_input` from the damaged images' `classical::prefill`s, already computed.
fn prefilled_input(
    cfg: &RestoreConfig,
    damaged: &[Damaged],
    prefilled: &[Image],
    shape: InputShape,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let b = damaged.len();
    let (c, h, w) = (shape.channels, shape.height, shape.width);
    let cin = cfg.input_channels(shape);
    let (mut input, mut image) = (
        Vec::with_capacity(b * cin * h * w),
        Vec::with_capacity(b * c * h * w),
    );
    for (d, full) in damaged.iter().zip(prefilled) {
        input.extend_from_slice(&full.px);
        image.extend_from_slice(&full.px);
        if let Some(mask) = classical::full_mask(&cfg.damage, d, shape) {
            input.extend(mask);
        }
    }
    (
        Tensor::<4>::from_data(TensorData::new(input, [b, cin, h, w]), device),
        Tensor::<4>::from_data(TensorData::new(image, [b, c, h, w]), device),
    )
}

/// A batch of `[b, c, h, w]` pixels → images, clamped to [0, 1].
pub fn to_images(t: Tensor<4>, shape: InputShape) -> Result<Vec<Image>> {
    let px = host_f32(t.clamp(0.0, 1.0), "repaired images")?;
    px.chunks(shape.pixels())
        .map(|p| Image::new(shape, p.to_vec()))
        .collect()
}

fn tensor(images: &[&Image], device: &Device) -> Tensor<4> {
    let s = images[0].shape;
    let px: Vec<f32> = images.iter().flat_map(|i| i.px.iter().copied()).collect();
    Tensor::<4>::from_data(
        TensorData::new(px, [images.len(), s.channels, s.height, s.width]),
        device,
    )
}

pub struct RestoreTask {
    g: Option<UNet>,
    d: Option<PatchDiscriminator>,
    opt_g: ModuleOptimizer,
    opt_d: ModuleOptimizer,
    /// The generator's and the discriminator's base learning rates.
    lr_g: f64,
    lr_d: f64,
    /// Weight of the adversarial term next to L1 (`[train.restore]`); 0: no discriminator.
    adversarial: f64,
    cfg: RestoreConfig,
    device: Device,
    shape: InputShape,
    seed: u64,
    normalizer: Normalizer,
    judge: Judge,
    eval_batch: usize,
    /// The test images of the panels, with their indices in the test set.
    panel: Vec<(usize, Image)>,
}

impl RestoreTask {
    pub fn new(
        s: &Settings,
        cfg: &RestoreConfig,
        data: &Splits,
        normalizer: &Normalizer,
        judge: Judge,
        device: Device,
    ) -> Result<Self> {
        let shape = data.train.shape;
        let (g, d) = cfg.init(shape, &device)?;
        let [(opt_g, lr_g), (opt_d, lr_d)] = s.adversarial_pair();
        let classes = data.source.classes.len();
        let panel = panel_images(&data.test, classes, s.eval.panel_images())?;
        Ok(Self {
            g: Some(g),
            d: Some(d),
            opt_g,
            opt_d,
            lr_g,
            lr_d,
            adversarial: s.train.restore.clone().unwrap_or_default().adversarial,
            cfg: cfg.clone(),
            device,
            shape,
            seed: s.seed,
            normalizer: normalizer.clone(),
            judge,
            eval_batch: s.train.eval_batch_size.max(1),
            panel,
        })
    }

    pub fn g(&self) -> &UNet {
        self.g.as_ref().expect("generator present between steps")
    }

    pub fn d(&self) -> &PatchDiscriminator {
        self.d
            .as_ref()
            .expect("discriminator present between steps")
    }

    fn adversarial(&self) -> bool {
        self.adversarial > 0.0
    }

    /// A normalized batch back to clean images in [0, 1].
    fn clean_images(&self, batch: &Batch) -> Result<Vec<Image>> {
        let plane = self.shape.height * self.shape.width;
        batch
            .images
            .chunks(self.shape.pixels())
            .map(|img| {
                let px = img
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let c = i / plane;
                        (v * self.normalizer.std[c] + self.normalizer.mean[c]).clamp(0.0, 1.0)
                    })
                    .collect();
                Image::new(self.shape, px)
            })
            .collect()
    }

    /// Repairs damaged images with the generator in evaluation mode.
    pub fn repair(&self, damaged: &[Damaged]) -> Result<Vec<Image>> {
        let device = self.device.clone().without_autodiff();
        let (input, image) = network_input(&self.cfg, damaged, self.shape, &device);
        to_images(self.g().valid().forward(input, image), self.shape)
    }

    /// Repairs damaged images as `repair` does, and returns their classical repairs too: both
    /// start from the same `classical::prefill`, computed once.
    fn repair_with_baseline(&self, damaged: &[Damaged]) -> Result<(Vec<Image>, Vec<Image>)> {
        let dcfg = &self.cfg.damage;
        let prefilled: Vec<Image> = damaged
            .iter()
            .map(|d| classical::prefill(dcfg, d))
            .collect();
        let base = prefilled
            .iter()
            .map(|p| classical::finish(dcfg, p))
            .collect();
        let device = self.device.clone().without_autodiff();
        let (input, image) = prefilled_input(&self.cfg, damaged, &prefilled, self.shape, &device);
        let repaired = to_images(self.g().valid().forward(input, image), self.shape)?;
        Ok((repaired, base))
    }

    /// The panel rows (clean, damaged, baseline, restored) as bytes.
    fn panel_rows(&self) -> Result<Vec<(String, Vec<Vec<u8>>)>> {
        let dcfg = &self.cfg.damage;
        let damaged: Vec<Damaged> = self
            .panel
            .iter()
            .map(|(i, img)| {
                dcfg.apply(
                    img,
                    &mut ChaCha8Rng::seed_from_u64(eval_damage_seed(self.seed, *i)),
                )
            })
            .collect::<Result<_>>()?;
        let (repaired, base) = self.repair_with_baseline(&damaged)?;
        Ok(vec![
            (
                "clean".into(),
                self.panel.iter().map(|(_, i)| i.to_bytes()).collect(),
            ),
            (
                "damaged".into(),
                damaged
                    .iter()
                    .map(|d| classical::full_size(dcfg, d).to_bytes())
                    .collect(),
            ),
            (
                baseline_name(dcfg),
                base.iter().map(Image::to_bytes).collect(),
            ),
            (
                "restored".into(),
                repaired.iter().map(Image::to_bytes).collect(),
            ),
        ])
    }

    fn draw_panels(&self, path: &Path, title: &str) -> Result<()> {
        plots::image_grid(path, title, &self.panel_rows()?, self.shape, 3)
    }
}

/// Up to `n` images of `set`, the first of each class in turn, with their indices.
fn panel_images(set: &ImageSet, classes: usize, n: usize) -> Result<Vec<(usize, Image)>> {
    let mut picked: Vec<usize> = Vec::new();
    let mut round = 0;
    while picked.len() < n.min(set.len()) {
        let before = picked.len();
        for c in 0..classes {
            if picked.len() >= n {
                break;
            }
            if let Some(i) = (0..set.len())
                .filter(|&i| set.labels[i] as usize == c)
                .nth(round)
            {
                picked.push(i);
            }
        }
        if picked.len() == before {
            break;
        }
        round += 1;
    }
    picked
        .into_iter()
        .map(|i| Ok((i, Image::from_bytes(set.shape, set.image(i))?)))
        .collect()
}

/// Sums of the per-image quality and judge hits of one evaluation.
#[derive(Default)]
struct Tally {
    psnr: [f64; 3],
    ssim: [f64; 3],
    correct: [usize; 4],
}

impl Task for RestoreTask {
    fn spec(&self) -> TaskSpec {
        let mut train = vec!["l1"];
        let mut curves = vec![Curve {
            file: "psnr.png",
            title: "PSNR on validation (dB): damaged, classical baseline, restored",
            y_label: "PSNR (dB)",
            metrics: vec!["psnr", "psnr_baseline", "psnr_damaged"],
        }];
        curves.push(Curve {
            file: "l1.png",
            title: "L1 reconstruction loss",
            y_label: "mean |restored − clean|",
            metrics: vec!["l1"],
        });
        if self.adversarial() {
            train.extend(["d_loss", "g_adv"]);
            curves.push(Curve {
                file: "adversarial.png",
                title: "Patch discriminator and adversarial losses",
                y_label: "loss",
                metrics: vec!["d_loss", "g_adv"],
            });
        }
        curves.push(Curve {
            file: "judge-accuracy.png",
            title: "Judge classifier's accuracy on validation images",
            y_label: "accuracy",
            metrics: vec![
                "accuracy_clean",
                "accuracy_restored",
                "accuracy_baseline",
                "accuracy_damaged",
            ],
        });
        TaskSpec {
            train,
            eval: EVAL_METRICS.to_vec(),
            select: ("psnr", Goal::Max),
            learning_rates: vec![("lr_g", self.lr_g), ("lr_d", self.lr_d)],
            curves,
        }
    }

    fn step(&mut self, batch: Batch, lr_factor: f64, step: u64) -> Result<StepStats> {
        let count = batch.len();
        let clean = self.clean_images(&batch)?;
        let damaged: Vec<Damaged> = clean
            .iter()
            .enumerate()
            .map(|(i, img)| {
                let mut rng = ChaCha8Rng::seed_from_u64(mix(&[self.seed, step, i as u64, 13]));
                self.cfg.damage.apply(img, &mut rng)
            })
            .collect::<Result<_>>()?;
        let (input, image) = network_input(&self.cfg, &damaged, self.shape, &self.device);
        let target = tensor(&clean.iter().collect::<Vec<_>>(), &self.device);
        let g = self.g.take().expect("generator present");
        let out = g.forward(input, image.clone());
        let n = count as f64;
        let mut sums = Vec::new();
        let adversarial = if self.adversarial() {
            let d = self.d.take().expect("discriminator present");
            let real = d.forward(image.clone(), target.clone());
            let fake = d.forward(image.clone(), out.clone().detach());
            let d_loss = softplus(real.neg(), 1.0).mean() + softplus(fake, 1.0).mean();
            sums.push(("d_loss", d_loss.clone().into_scalar::<f64>() * n));
            let grads = GradientsParams::from_grads(d_loss.backward(), &d);
            let d = self.opt_d.step(self.lr_d * lr_factor, d, grads);
            let (d, score) = frozen(d, |d| d.forward(image, out.clone()));
            self.d = Some(d);
            Some(softplus(score.neg(), 1.0).mean())
        } else {
            None
        };
        let l1 = (out - target).abs().mean();
        sums.insert(0, ("l1", l1.clone().into_scalar::<f64>() * n));
        let loss = match adversarial {
            Some(adv) => {
                sums.push(("g_adv", adv.clone().into_scalar::<f64>() * n));
                l1 + adv.mul_scalar(self.adversarial)
            }
            None => l1,
        };
        let grads = GradientsParams::from_grads(loss.backward(), &g);
        self.g = Some(self.opt_g.step(self.lr_g * lr_factor, g, grads));
        Ok(StepStats { count, sums })
    }

    fn evaluate(&self, set: &ImageSet, _: &Normalizer, _: usize) -> Result<Report> {
        let dcfg = &self.cfg.damage;
        let device = self.device.clone().without_autodiff();
        let mut t = Tally::default();
        let indices: Vec<usize> = (0..set.len()).collect();
        for chunk in indices.chunks(self.eval_batch) {
            let clean: Vec<Image> = chunk
                .iter()
                .map(|&i| Image::from_bytes(set.shape, set.image(i)))
                .collect::<Result<_>>()?;
            let damaged: Vec<Damaged> = chunk
                .iter()
                .zip(&clean)
                .map(|(&i, img)| {
                    dcfg.apply(
                        img,
                        &mut ChaCha8Rng::seed_from_u64(eval_damage_seed(self.seed, i)),
                    )
                })
                .collect::<Result<_>>()?;
            let full: Vec<Image> = damaged
                .iter()
                .map(|d| classical::full_size(dcfg, d))
                .collect();
            let (repaired, base) = self.repair_with_baseline(&damaged)?;
            for (k, variant) in [&full, &base, &repaired].into_iter().enumerate() {
                for (c, v) in clean.iter().zip(variant) {
                    t.psnr[k] += quality::psnr(c, v);
                    t.ssim[k] += quality::ssim(c, v);
                }
            }
            let labels: Vec<i64> = chunk.iter().map(|&i| set.labels[i] as i64).collect();
            for (k, variant) in [&clean, &full, &base, &repaired].into_iter().enumerate() {
                let pred = self
                    .judge
                    .classify_pixels(tensor(&variant.iter().collect::<Vec<_>>(), &device))?;
                t.correct[k] += pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
            }
        }
        let n = set.len().max(1) as f64;
        let values = [
            t.psnr[2] / n,
            t.ssim[2] / n,
            t.psnr[0] / n,
            t.ssim[0] / n,
            t.psnr[1] / n,
            t.ssim[1] / n,
            t.correct[0] as f64 / n,
            t.correct[1] as f64 / n,
            t.correct[2] as f64 / n,
            t.correct[3] as f64 / n,
        ];
        let mut details = Map::new();
        details.insert("judge".into(), json!(self.judge.run.display().to_string()));
        details.insert("baseline".into(), json!(baseline_name(dcfg)));
        details.insert("damage".into(), json!(dcfg));
        details.insert("panels".into(), json!(PANELS));
        Ok(Report {
            count: set.len(),
            metrics: EVAL_METRICS
                .iter()
                .zip(values)
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            details,
        })
    }

    fn infer(&self, batch: Batch) -> Result<()> {
        let clean = self.clean_images(&batch)?;
        let damaged: Vec<Damaged> = clean
            .iter()
            .map(|img| {
                self.cfg
                    .damage
                    .apply(img, &mut ChaCha8Rng::seed_from_u64(self.seed))
            })
            .collect::<Result<_>>()?;
        let _ = self.repair(&damaged)?;
        Ok(())
    }

    fn save(&self) -> Result<Vec<Part>> {
        pair_parts(self.g(), self.d(), &self.opt_g, &self.opt_d)
    }

    fn load(&mut self, parts: Vec<Part>) -> Result<()> {
        load_pair(
            &mut self.g,
            &mut self.d,
            &mut self.opt_g,
            &mut self.opt_d,
            &parts,
        )
    }

    fn parameter_count(&self) -> usize {
        self.g().num_params()
            + if self.adversarial() {
                self.d().num_params()
            } else {
                0
            }
    }

    fn epoch_end(&self, epoch: usize, run_dir: &Path) -> Result<()> {
        self.draw_panels(
            &run_dir
                .join(EPOCH_PANELS)
                .join(format!("epoch-{epoch:03}.png")),
            &format!("Test images after epoch {epoch}: clean, damaged, classical, restored"),
        )
    }

    fn write_figures(&self, test: &Report, run_dir: &Path) -> Result<()> {
        let m = |k: &str| test.metrics.get(k).copied().unwrap_or(f64::NAN);
        self.draw_panels(
            &run_dir.join(PANELS),
            &format!(
                "Test PSNR: damaged {:.2}, {} {:.2}, restored {:.2} dB",
                m("psnr_damaged"),
                baseline_name(&self.cfg.damage),
                m("psnr_baseline"),
                m("psnr")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::AdamConfig;

    use crate::models::Model;
    use crate::models::cnn::CnnConfig;
    use crate::models::flat_params;
    use crate::restore::DamageConfig;
    use std::path::PathBuf;

    fn task(adversarial: f64) -> RestoreTask {
        let shape = InputShape {
            channels: 1,
            height: 12,
            width: 12,
        };
        let cfg = RestoreConfig {
            damage: DamageConfig {
                noise: 0.2,
                hole: 4,
                ..Default::default()
            },
            channels: 4,
            d_channels: 4,
        };
        let device = Device::flex().autodiff();
        device.seed(5);
        let (g, d) = cfg.init(shape, &device).unwrap();
        let plain = Device::flex();
        let judge = CnnConfig::default().init(shape, 3, &plain).unwrap().valid();
        let n = Normalizer {
            mean: vec![0.3],
            std: vec![0.4],
        };
        let adam = || AdamConfig::new().with_beta_1(0.5).init();
        let panel_image = Image::new(shape, vec![0.5; 144]).unwrap();
        RestoreTask {
            g: Some(g),
            d: Some(d),
            opt_g: adam(),
            opt_d: adam(),
            lr_g: 1e-3,
            lr_d: 2e-4,
            adversarial,
            cfg,
            device,
            shape,
            seed: 1,
            normalizer: n.clone(),
            judge: Judge {
                model: Model::Cnn(judge),
                normalizer: n,
                run: PathBuf::from("test"),
                device: plain,
            },
            eval_batch: 8,
            panel: vec![(0, panel_image)],
        }
    }

    fn batch(n: usize) -> Batch {
        Batch {
            images: (0..n * 144)
                .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
                .collect(),
            labels: (0..n as i64).map(|i| i % 3).collect(),
            index: 0,
        }
    }

    #[test]
    fn a_step_trains_the_generator_and_only_an_adversarial_run_trains_the_discriminator() {
        for adversarial in [0.0, 0.1] {
            let mut t = task(adversarial);
            let (g0, d0) = (flat_params(t.g()), flat_params(t.d()));
            let stats = t.step(batch(6), 1.0, 0).unwrap();
            let names: Vec<&str> = stats.sums.iter().map(|s| s.0).collect();
            assert_eq!(
                names,
                t.spec().train,
                "the step reports what the spec declares"
            );
            assert!(
                stats.sums.iter().all(|s| s.1.is_finite()),
                "{:?}",
                stats.sums
            );
            assert_ne!(g0, flat_params(t.g()), "the generator did not move");
            if adversarial > 0.0 {
                assert_ne!(d0, flat_params(t.d()), "the discriminator did not move");
            } else {
                assert_eq!(
                    d0,
                    flat_params(t.d()),
                    "no discriminator without an adversarial loss"
                );
            }
        }
    }

    #[test]
    fn the_input_carries_the_mask_and_the_step_damages_reproducibly() {
        let t = task(0.0);
        let clean = t.clean_images(&batch(2)).unwrap();
        // the normalized batch maps back to pixels in [0, 1]
        assert!(
            clean
                .iter()
                .all(|i| i.px.iter().all(|v| (0.0..=1.0).contains(v)))
        );
        let damage = |seed| {
            clean
                .iter()
                .map(|c| {
                    t.cfg
                        .damage
                        .apply(c, &mut ChaCha8Rng::seed_from_u64(seed))
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        let d = damage(3);
        assert_eq!(d, damage(3));
        let (input, image) = network_input(&t.cfg, &d, t.shape, &Device::flex());
        assert_eq!(input.dims(), [2, 2, 12, 12]);
        assert_eq!(image.dims(), [2, 1, 12, 12]);
        let px = host_f32(input, "input").unwrap();
        let mask = &px[144..288];
        assert_eq!(mask.iter().sum::<f32>(), 16.0, "the 4 × 4 hole is marked");
    }

    #[test]
    fn evaluation_measures_every_variant_and_is_the_same_each_time() {
        let t = task(0.1);
        let set = ImageSet::new(
            t.shape,
            (0..10 * 144).map(|i| (i * 7 % 256) as u8).collect(),
            (0..10).map(|i| i % 3).collect(),
        )
        .unwrap();
        let a = t.evaluate(&set, &t.normalizer.clone(), 4).unwrap();
        let b = t.evaluate(&set, &t.normalizer.clone(), 4).unwrap();
        assert_eq!(a.metrics, b.metrics);
        let keys: Vec<&str> = a.metrics.keys().map(String::as_str).collect();
        for k in EVAL_METRICS {
            assert!(keys.contains(&k), "{k} missing: {keys:?}");
        }
        // the damaged images are worse than the clean ones, which score the cap
        assert!(a.metrics["psnr_damaged"] < 30.0, "{:?}", a.metrics);
        assert_eq!(a.details["baseline"], "harmonic fill + median 3×3");
    }
}
