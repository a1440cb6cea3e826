//! Support vector machines as fovea classifiers: a fixed feature map, then a linear layer of one
//! score per class, trained by mini-batch gradient descent on the chosen backend with a
//! multi-class hinge loss and L2 regularisation (the objective of LinearSVC, divided by C · n):
//!
//!   mean over the batch of the hinge loss + ‖W‖² / (2 · C · n),
//!
//! with n the number of training images. The features:
//! - `pixels`: the normalized image, flattened;
//! - `rff`: random Fourier features (Rahimi & Recht, 2007): z(x) = √(2/D) · cos(Ωx + b) with
//!   Ω ~ N(0, 2γ) and b ~ U(0, 2π), whose inner products approximate the RBF kernel
//!   exp(−γ‖x − y‖²); Ω and b are drawn once at init and kept (not trained);
//! - `hog`: histograms of oriented gradients (Dalal & Triggs, 2005): unsigned gradient
//!   orientations in `hog_bins` bins (linear interpolation between the two nearest bins,
//!   weighted by the gradient's magnitude), summed over cells of `hog_cell` × `hog_cell` pixels,
//!   L2-Hys-normalized over blocks of `hog_block` × `hog_block` cells (stride one cell);
//! - `hog-rff`: random Fourier features of the HOG vector (the RBF kernel on HOG features).
//!
//! With `pixel_weight` w > 0, `hog` and `hog-rff` append the normalized pixels to the HOG vector,
//! scaled so that their expected squared norm is w times HOG's (each block has unit norm, so
//! HOG's is the number of blocks): HOG is contrast-normalized and blind to how bright a region
//! is, which the pixels keep.

use anyhow::{Result, bail};
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::relu;
use burn::tensor::ops::PadMode;
use serde::{Deserialize, Serialize};

use crate::data::InputShape;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SvmFeatures {
    Pixels,
    Rff,
    Hog,
    HogRff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SvmLoss {
    /// max(0, 1 − margin)
    Hinge,
    /// max(0, 1 − margin)²
    SquaredHinge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Multiclass {
    /// One binary SVM per class against the rest, summed: Σⱼ loss(yⱼ · sⱼ), yⱼ = ±1.
    Ovr,
    /// Crammer & Singer: loss(s_y − maxⱼ≠y sⱼ).
    CrammerSinger,
}

/// `[model] kind = "svm"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SvmConfig {
    pub features: SvmFeatures,
    pub loss: SvmLoss,
    pub multiclass: Multiclass,
    /// The inverse regularisation strength C (as in scikit-learn's SVC and LinearSVC).
    pub c: f64,
    /// `rff`, `hog-rff`: the number D of random features.
    pub components: usize,
    /// `rff`, `hog-rff`: γ of the approximated RBF kernel exp(−γ‖x − y‖²); 0 = 1 / E‖x‖²:
    /// 1 / (number of pixel values) for the standardized pixels (scikit-learn's "scale"),
    /// 1 / (number of blocks) for HOG (each block has unit norm).
    pub gamma: f64,
    pub hog_cell: usize,
    pub hog_bins: usize,
    pub hog_block: usize,
    /// `hog`, `hog-rff`: the weight of the appended pixels in the squared distance, relative to
    /// HOG's; 0 = HOG alone.
    pub pixel_weight: f64,
}

impl Default for SvmConfig {
    fn default() -> Self {
        Self {
            features: SvmFeatures::Pixels,
            loss: SvmLoss::SquaredHinge,
            multiclass: Multiclass::Ovr,
            c: 1.0,
            components: 2000,
            gamma: 0.0,
            hog_cell: 4,
            hog_bins: 9,
            hog_block: 2,
            pixel_weight: 0.0,
        }
    }
}

impl SvmConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.c > 0.0 && self.c.is_finite()) {
            return Err(format!("c must be positive (got {})", self.c));
        }
        if !(self.gamma >= 0.0 && self.gamma.is_finite()) {
            return Err(format!("gamma must be ≥ 0 (got {})", self.gamma));
        }
        if !(self.pixel_weight >= 0.0 && self.pixel_weight.is_finite()) {
            return Err(format!(
                "pixel_weight must be ≥ 0 (got {})",
                self.pixel_weight
            ));
        }
        if self.pixel_weight > 0.0 && !self.uses_hog() {
            return Err(format!(
                "pixel_weight = {} appends the pixels to HOG: it needs features = \"hog\" or \"hog-rff\"",
                self.pixel_weight
            ));
        }
        for (key, v) in [
            ("components", self.components),
            ("hog_cell", self.hog_cell),
            ("hog_bins", self.hog_bins),
            ("hog_block", self.hog_block),
        ] {
            if v == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        Ok(())
    }

    /// The number of features the linear layer reads for images of `input` shape.
    pub fn feature_count(&self, input: InputShape) -> Result<usize> {
        Ok(match self.features {
            SvmFeatures::Pixels => input.pixels(),
            SvmFeatures::Rff | SvmFeatures::HogRff => self.components,
            SvmFeatures::Hog => self.hog_input(input)?,
        })
    }

    fn uses_hog(&self) -> bool {
        matches!(self.features, SvmFeatures::Hog | SvmFeatures::HogRff)
    }

    /// The length of the HOG vector, with the appended pixels when `pixel_weight` > 0.
    fn hog_input(&self, input: InputShape) -> Result<usize> {
        let pixels = if self.pixel_weight > 0.0 {
            input.pixels()
        } else {
            0
        };
        Ok(self.hog_count(input)? + pixels)
    }

    /// The factor on the appended pixels: √(w · blocks / pixels), so that their expected squared
    /// norm (≈ the number of pixel values, normalized) is w times HOG's (≈ the number of blocks).
    fn pixel_scale(&self, input: InputShape) -> Result<f64> {
        if self.pixel_weight == 0.0 {
            return Ok(0.0);
        }
        let blocks = self.hog_blocks(input)?;
        Ok((self.pixel_weight * blocks as f64 / input.pixels() as f64).sqrt())
    }

    /// The number of HOG blocks (each of unit norm).
    fn hog_blocks(&self, input: InputShape) -> Result<usize> {
        Ok(self.hog_count(input)? / (self.hog_block * self.hog_block * self.hog_bins))
    }

    /// Multiply-adds of one image's forward pass: the random projection (with random features)
    /// and the linear layer; computing HOG itself is not counted.
    pub fn forward_macs(&self, input: InputShape, classes: usize) -> Option<u64> {
        let projection = match self.features {
            SvmFeatures::Rff | SvmFeatures::HogRff => {
                self.rff_input(input).ok()?.0 * self.components
            }
            SvmFeatures::Pixels | SvmFeatures::Hog => 0,
        };
        Some((projection + self.feature_count(input).ok()? * classes) as u64)
    }

    /// The length of the HOG vector of images of `input` shape.
    fn hog_count(&self, input: InputShape) -> Result<usize> {
        let (ch, cw) = (input.height / self.hog_cell, input.width / self.hog_cell);
        if ch < self.hog_block || cw < self.hog_block {
            bail!(
                "model.hog_cell = {} and hog_block = {} need images of at least {} × {} pixels; these are {input}",
                self.hog_cell,
                self.hog_block,
                self.hog_cell * self.hog_block,
                self.hog_cell * self.hog_block
            );
        }
        Ok((ch - self.hog_block + 1)
            * (cw - self.hog_block + 1)
            * self.hog_block
            * self.hog_block
            * self.hog_bins)
    }

    /// The input of the random features (pixels or HOG) and its default γ, 1 / E‖x‖².
    fn rff_input(&self, input: InputShape) -> Result<(usize, f64)> {
        Ok(match self.features {
            SvmFeatures::HogRff => (
                self.hog_input(input)?,
                1.0 / ((1.0 + self.pixel_weight) * self.hog_blocks(input)? as f64),
            ),
            _ => (input.pixels(), 1.0 / input.pixels() as f64),
        })
    }

    pub fn init(&self, input: InputShape, classes: usize, device: &Device) -> Result<Svm> {
        let features = self.feature_count(input)?;
        let (d, scale) = self.rff_input(input)?;
        let random = matches!(self.features, SvmFeatures::Rff | SvmFeatures::HogRff);
        let rff = random.then(|| {
            let gamma = if self.gamma > 0.0 { self.gamma } else { scale };
            let omega = Tensor::<2>::random(
                [d, self.components],
                Distribution::Normal(0.0, (2.0 * gamma).sqrt()),
                device,
            );
            let phase = Tensor::<1>::random(
                [self.components],
                Distribution::Uniform(0.0, std::f64::consts::TAU),
                device,
            );
            Rff {
                omega: Param::from_tensor(omega).set_require_grad(false),
                phase: Param::from_tensor(phase).set_require_grad(false),
            }
        });
        Ok(Svm {
            rff,
            linear: LinearConfig::new(features, classes).init(device),
            features: self.features,
            loss: self.loss,
            multiclass: self.multiclass,
            c: self.c,
            train_images: 1,
            hog: [self.hog_cell, self.hog_bins, self.hog_block],
            pixel_scale: self.pixel_scale(input)?,
        })
    }
}

/// The fixed random projection of `rff` features.
#[derive(Module, Debug)]
pub struct Rff {
    omega: Param<Tensor<2>>,
    phase: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
pub struct Svm {
    rff: Option<Rff>,
    linear: Linear,
    #[module(skip)]
    features: SvmFeatures,
    #[module(skip)]
    loss: SvmLoss,
    #[module(skip)]
    multiclass: Multiclass,
    #[module(skip)]
    c: f64,
    /// n in the regularisation term; set by the training task.
    #[module(skip)]
    train_images: usize,
    #[module(skip)]
    hog: [usize; 3],
    /// The factor on the pixels appended to HOG; 0 = none.
    #[module(skip)]
    pixel_scale: f64,
}

impl Svm {
    /// Sets n, the number of training images, of the regularisation term ‖W‖² / (2 · C · n).
    pub fn with_train_images(mut self, n: usize) -> Self {
        self.train_images = n.max(1);
        self
    }

    /// The features of normalized images `[b, c, h, w]` → `[b, f]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        match self.features {
            SvmFeatures::Pixels => images.flatten::<2>(1, 3),
            SvmFeatures::Rff => self.random_features(images.flatten::<2>(1, 3)),
            SvmFeatures::Hog => self.hog_features(images),
            SvmFeatures::HogRff => self.random_features(self.hog_features(images)),
        }
    }

    /// HOG, with the scaled pixels appended when `pixel_weight` > 0.
    fn hog_features(&self, images: Tensor<4>) -> Tensor<2> {
        let [cell, bins, block] = self.hog;
        let h = hog(images.clone(), cell, bins, block);
        if self.pixel_scale > 0.0 {
            let pixels = images
                .detach()
                .flatten::<2>(1, 3)
                .mul_scalar(self.pixel_scale);
            Tensor::cat(vec![h, pixels], 1)
        } else {
            h
        }
    }

    /// z(x) = √(2/D) · cos(Ωx + b) of `x` `[b, d]`.
    fn random_features(&self, x: Tensor<2>) -> Tensor<2> {
        let rff = self
            .rff
            .as_ref()
            .expect("random features have their projection");
        let [_, n] = rff.omega.dims();
        (x.matmul(rff.omega.val()) + rff.phase.val().reshape([1, n]))
            .cos()
            .mul_scalar((2.0 / n as f64).sqrt())
    }

    /// Images → one score per class `[b, classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.linear.forward(self.features(images))
    }

    /// The mean multi-class hinge loss of `scores` against `labels` (what is logged as `loss`).
    pub fn data_loss(&self, scores: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        hinge(scores, labels, self.loss, self.multiclass)
    }

    /// The regularisation term ‖W‖² / (2 · C · n) that training adds to the data loss.
    pub fn penalty(&self) -> Tensor<1> {
        self.linear
            .weight
            .val()
            .powf_scalar(2.0)
            .sum()
            .div_scalar(2.0 * self.c * self.train_images as f64)
    }
}

/// The mean multi-class hinge loss of `scores` `[b, k]` against `labels` `[b]`.
pub fn hinge(
    scores: Tensor<2>,
    labels: Tensor<1, Int>,
    loss: SvmLoss,
    multiclass: Multiclass,
) -> Tensor<1> {
    let [_, k] = scores.dims();
    let onehot = labels.clone().one_hot::<2>(k).float(); // [b, k]
    let per = |margin: Tensor<2>| -> Tensor<2> {
        let h = relu(margin.neg().add_scalar(1.0));
        match loss {
            SvmLoss::Hinge => h,
            SvmLoss::SquaredHinge => h.powf_scalar(2.0),
        }
    };
    match multiclass {
        Multiclass::Ovr => {
            let sign = onehot.mul_scalar(2.0).sub_scalar(1.0); // +1 for the label, −1 else
            per(scores * sign).sum_dim(1).mean()
        }
        Multiclass::CrammerSinger => {
            let own = (scores.clone() * onehot.clone()).sum_dim(1); // [b, 1]
            // the label's own score pushed far down so that the max is over the others
            let others = (scores - onehot.mul_scalar(1e9)).max_dim(1); // [b, 1]
            per(own - others).mean()
        }
    }
}

/// HOG features of normalized images `[b, c, h, w]` → `[b, blocks · block² · bins]` (the
/// channels are averaged first; the image is cropped to whole cells).
pub fn hog(images: Tensor<4>, cell: usize, bins: usize, block: usize) -> Tensor<2> {
    let images = images.detach();
    let [b, _, h, w] = images.dims();
    let gray = images.mean_dim(1); // [b, 1, h, w]
    let p = gray.pad((1, 1, 1, 1), PadMode::Edge); // [b, 1, h+2, w+2]
    let gx = p.clone().slice([0..b, 0..1, 1..h + 1, 2..w + 2])
        - p.clone().slice([0..b, 0..1, 1..h + 1, 0..w]);
    let gy =
        p.clone().slice([0..b, 0..1, 2..h + 2, 1..w + 1]) - p.slice([0..b, 0..1, 0..h, 1..w + 1]);
    let magnitude = (gx.clone().powf_scalar(2.0) + gy.clone().powf_scalar(2.0)).sqrt();
    let pi = std::f64::consts::PI;
    let angle = gy.atan2(gx); // (−π, π]
    let unsigned = angle.clone() - angle.div_scalar(pi).floor().mul_scalar(pi); // [0, π)
    let position = unsigned.div_scalar(pi / bins as f64).sub_scalar(0.5); // bin centres at k
    let votes: Vec<Tensor<4>> = (0..bins)
        .map(|k| {
            let d = position.clone().sub_scalar(k as f64);
            // circular distance in bins
            let d = d.clone() - d.div_scalar(bins as f64).round().mul_scalar(bins as f64);
            relu(d.abs().neg().add_scalar(1.0)) * magnitude.clone()
        })
        .collect();
    let votes = Tensor::cat(votes, 1); // [b, bins, h, w]
    let (ch, cw) = (h / cell, w / cell);
    let cells = votes
        .slice([0..b, 0..bins, 0..ch * cell, 0..cw * cell])
        .reshape([b, bins, ch, cell, cw, cell])
        .sum_dim(5)
        .sum_dim(3)
        .reshape([b, bins, ch, cw]);
    let mut blocks = Vec::new();
    for y in 0..=ch - block {
        for x in 0..=cw - block {
            let v = cells
                .clone()
                .slice([0..b, 0..bins, y..y + block, x..x + block])
                .flatten::<2>(1, 3); // [b, bins · block²]
            let eps = 1e-3;
            let l2 = |v: Tensor<2>| {
                let norm = v
                    .clone()
                    .powf_scalar(2.0)
                    .sum_dim(1)
                    .add_scalar(eps * eps)
                    .sqrt();
                v / norm
            };
            blocks.push(l2(l2(v).clamp_max(0.2)));
        }
    }
    Tensor::cat(blocks, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    /// The loss and its gradient with respect to the scores.
    fn loss_and_grad(
        scores: [[f32; 3]; 2],
        labels: [i64; 2],
        loss: SvmLoss,
        mc: Multiclass,
    ) -> (f32, Vec<f32>) {
        let device = Device::flex().autodiff();
        let s = Tensor::<2>::from_data(TensorData::from(scores), &device).require_grad();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [2]), &device);
        let l = hinge(s.clone(), y, loss, mc);
        let value = values(l.clone())[0];
        let grads = l.backward();
        (value, values(s.grad(&grads).unwrap()))
    }

    #[test]
    fn the_hinge_losses_and_their_gradients_match_a_hand_computed_case() {
        // sample 1: label 0, scores (2, 0.5, −1); sample 2: label 1, scores (1, 1.5, 0)
        let scores = [[2.0, 0.5, -1.0], [1.0, 1.5, 0.0]];
        // one-vs-rest: sample 1 pays 1 + 0.5 for class 1 (the others have margins ≥ 1);
        // sample 2 pays 1 + 1 for class 0, 1 − 1.5 < 0 for its own, 1 + 0 for class 2
        let (l, g) = loss_and_grad(scores, [0, 1], SvmLoss::Hinge, Multiclass::Ovr);
        assert!((l - (1.5 + 3.0) / 2.0).abs() < 1e-6, "{l}");
        let want = [0.0, 0.5, 0.0, 0.5, 0.0, 0.5]; // d/ds = ±1 per active term, / batch of 2
        assert!(
            g.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{g:?}"
        );
        let (l, g) = loss_and_grad(scores, [0, 1], SvmLoss::SquaredHinge, Multiclass::Ovr);
        assert!((l - (2.25 + 4.0 + 1.0) / 2.0).abs() < 1e-6, "{l}");
        let want = [0.0, 1.5, 0.0, 2.0, 0.0, 1.0]; // 2 · h · (±1) / 2
        assert!(
            g.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{g:?}"
        );
        // Crammer–Singer: sample 1's margin 2 − 0.5 = 1.5 ≥ 1 pays nothing; sample 2's
        // 1.5 − 1 = 0.5 pays 0.5, pushing its own score up and class 0's down
        let (l, g) = loss_and_grad(scores, [0, 1], SvmLoss::Hinge, Multiclass::CrammerSinger);
        assert!((l - 0.25).abs() < 1e-6, "{l}");
        let want = [0.0, 0.0, 0.0, 0.5, -0.5, 0.0];
        assert!(
            g.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{g:?}"
        );
    }

    #[test]
    fn random_fourier_features_approximate_the_rbf_kernel_better_with_more_components() {
        let device = Device::flex();
        device.seed(3);
        let shape = InputShape {
            channels: 1,
            height: 4,
            width: 5,
        };
        let x = Tensor::<4>::random([12, 1, 4, 5], Distribution::Normal(0.0, 1.0), &device);
        let flat = values(x.clone().flatten::<2>(1, 3));
        let gamma = 0.05;
        let error = |components: usize| -> f64 {
            let cfg = SvmConfig {
                features: SvmFeatures::Rff,
                components,
                gamma,
                ..Default::default()
            };
            let svm = cfg.init(shape, 3, &device).unwrap();
            let z = values(svm.features(x.clone()));
            let (mut sum, mut n) = (0.0, 0);
            for i in 0..12 {
                for j in 0..12 {
                    let dot: f64 = (0..components)
                        .map(|k| z[i * components + k] as f64 * z[j * components + k] as f64)
                        .sum();
                    let d2: f64 = (0..20)
                        .map(|k| (flat[i * 20 + k] as f64 - flat[j * 20 + k] as f64).powi(2))
                        .sum();
                    sum += (dot - (-gamma * d2).exp()).abs();
                    n += 1;
                }
            }
            sum / n as f64
        };
        let (few, many) = (error(50), error(8000));
        assert!(many < 0.03, "mean |error| with 8000 components: {many}");
        assert!(many < few / 3.0, "50 components: {few}, 8000: {many}");
    }

    #[test]
    fn hog_has_its_size_and_sees_the_orientation_of_an_edge() {
        let device = Device::flex();
        let cfg = SvmConfig {
            features: SvmFeatures::Hog,
            ..Default::default()
        };
        let shape = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        // 7 × 7 cells of 4 pixels, 6 × 6 blocks of 2 × 2 cells, 9 bins
        assert_eq!(cfg.feature_count(shape).unwrap(), 6 * 6 * 4 * 9);
        let edge = |vertical: bool| {
            let px: Vec<f32> = (0..28 * 28)
                .map(|i| {
                    let (y, x) = (i / 28, i % 28);
                    f32::from(if vertical { x >= 14 } else { y >= 14 })
                })
                .collect();
            let img = Tensor::<4>::from_data(TensorData::new(px, [1, 1, 28, 28]), &device);
            let f = values(hog(img, 4, 9, 2));
            assert_eq!(f.len(), 1296);
            // energy per orientation bin, summed over every block and cell
            let mut per_bin = [0f32; 9];
            for (i, v) in f.iter().enumerate() {
                per_bin[bin_of(i)] += v;
            }
            per_bin
        };
        // the flattened block is [bins, 2, 2]: the bin is the index / 4 within each block of 36
        fn bin_of(i: usize) -> usize {
            (i % 36) / 4
        }
        // a vertical edge has a horizontal gradient: orientation 0°, halfway between the bins
        // centred at 10° (bin 0) and 170° (bin 8)
        let v = edge(true);
        let total: f32 = v.iter().sum();
        assert!(total > 0.0);
        assert!((v[0] + v[8]) / total > 0.99, "{v:?}");
        assert!((v[0] - v[8]).abs() / total < 0.01, "{v:?}");
        // a horizontal edge: 90°, the centre of bin 4
        let h = edge(false);
        let total: f32 = h.iter().sum();
        assert!(h[4] / total > 0.99, "{h:?}");
    }

    #[test]
    fn pixel_weight_appends_the_scaled_pixels_to_hog() {
        let device = Device::flex();
        let shape = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let cfg = SvmConfig {
            features: SvmFeatures::Hog,
            pixel_weight: 0.5,
            ..Default::default()
        };
        assert_eq!(cfg.feature_count(shape).unwrap(), 1296 + 784);
        let px: Vec<f32> = (0..2 * 784)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let img = Tensor::<4>::from_data(TensorData::new(px.clone(), [2, 1, 28, 28]), &device);
        let svm = cfg.init(shape, 3, &device).unwrap();
        let f = values(svm.features(img.clone()));
        let h = values(hog(img, 4, 9, 2));
        // 36 blocks of unit norm against 784 pixels: the pixels' weight in ‖x − y‖² is 0.5
        let scale = (0.5f32 * 36.0 / 784.0).sqrt();
        for n in 0..2 {
            let row = &f[n * 2080..(n + 1) * 2080];
            assert_eq!(&row[..1296], &h[n * 1296..(n + 1) * 1296]);
            for (got, p) in row[1296..].iter().zip(&px[n * 784..(n + 1) * 784]) {
                assert!((got - p * scale).abs() < 1e-6, "{got} vs {}", p * scale);
            }
        }
        // the kernel's default γ counts the pixels' share: 1 / ((1 + 0.5) · 36)
        let rff = SvmConfig {
            features: SvmFeatures::HogRff,
            ..cfg.clone()
        };
        let (d, gamma) = rff.rff_input(shape).unwrap();
        assert_eq!(d, 2080);
        assert!((gamma - 1.0 / 54.0).abs() < 1e-12, "{gamma}");
        // and it means nothing without HOG
        let err = SvmConfig {
            features: SvmFeatures::Rff,
            ..cfg
        }
        .validate()
        .unwrap_err();
        assert!(err.contains("pixel_weight") && err.contains("hog"), "{err}");
    }

    #[test]
    fn an_svm_step_moves_the_linear_layer_but_not_the_random_features() {
        use burn::optim::{AdamConfig, GradientsParams};
        let device = Device::flex().autodiff();
        device.seed(2);
        let shape = InputShape {
            channels: 1,
            height: 6,
            width: 6,
        };
        let cfg = SvmConfig {
            features: SvmFeatures::Rff,
            components: 32,
            ..Default::default()
        };
        let svm = cfg.init(shape, 3, &device).unwrap().with_train_images(100);
        let before_rff = values(svm.rff.as_ref().unwrap().omega.val());
        let before_w = values(svm.linear.weight.val());
        let x = Tensor::<4>::random([4, 1, 6, 6], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 1], [4]), &device);
        let loss = svm.data_loss(svm.forward(x), y) + svm.penalty();
        let grads = GradientsParams::from_grads(loss.backward(), &svm);
        let mut opt = AdamConfig::new().init();
        let svm = opt.step(0.01, svm, grads);
        assert_ne!(before_w, values(svm.linear.weight.val()));
        assert_eq!(before_rff, values(svm.rff.as_ref().unwrap().omega.val()));
    }
}
