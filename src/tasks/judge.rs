//! The judge: a trained fovea classifier that measures generated or repaired images, by its
//! penultimate features (the FID's space) and by its predictions (accuracy).

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use burn::prelude::*;

use super::classify::{argmax, host_f32, to_tensors};
use super::fid::Gaussian;
use crate::data::ImageSet;
use crate::data::batch::{Normalizer, eval_batches};
use crate::models::Model;

/// The classifier whose penultimate layer is the feature space of the FID.
pub struct Judge {
    /// In evaluation mode, on `device`.
    pub model: Model,
    pub normalizer: Normalizer,
    /// The run folder it was read from.
    pub run: PathBuf,
    pub device: Device,
}

impl Judge {
    /// Penultimate features `[n, d]` and predicted classes of already-normalized images.
    pub fn read(&self, x: Tensor<4>) -> Result<(Vec<f32>, usize, Vec<i64>)> {
        let (features, logits) = self
            .model
            .penultimate(x)
            .ok_or_else(|| anyhow!("the judge {} is not a cnn run", self.run.display()))?;
        let [_, d] = features.dims();
        Ok((host_f32(features, "features")?, d, argmax(logits)?))
    }

    /// The Gaussian of a real set's features.
    pub fn fit_set(&self, set: &ImageSet, batch_size: usize, limit: usize) -> Result<Gaussian> {
        let (mut all, mut dim) = (Vec::new(), 0);
        let mut seen = 0;
        for batch in eval_batches(set, batch_size, &self.normalizer) {
            if seen >= limit {
                break;
            }
            seen += batch.len();
            let (x, _) = to_tensors(batch, set.shape, &self.device);
            let (f, d, _) = self.read(x)?;
            all.extend(f);
            dim = d;
        }
        Gaussian::fit(&all, dim)
    }
}

impl Judge {
    /// Predicted classes of images given as pixels in [0, 1] `[b, c, h, w]` on any device.
    pub fn classify_pixels(&self, pixels: Tensor<4>) -> Result<Vec<i64>> {
        let x = normalize_pixels(pixels.to_device(&self.device), &self.normalizer);
        argmax(self.model.forward(x))
    }
}

/// Pixels in [0, 1] `[b, c, h, w]` → (p − mean) / std per channel.
pub fn normalize_pixels(t: Tensor<4>, n: &Normalizer) -> Tensor<4> {
    let device = t.device();
    let c = n.mean.len();
    let mean =
        Tensor::<1>::from_data(TensorData::new(n.mean.clone(), [c]), &device).reshape([1, c, 1, 1]);
    let std =
        Tensor::<1>::from_data(TensorData::new(n.std.clone(), [c]), &device).reshape([1, c, 1, 1]);
    (t - mean) / std
}
