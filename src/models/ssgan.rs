//! The semi-supervised GAN (Salimans et al., 2016; Odena, 2016): a generator, and a
//! discriminator that is a K-class classifier. Its "real or generated" decision comes from the
//! class logits l: with Z(x) = Σₖ exp lₖ(x), D(x) = Z / (Z + 1), the probability that x is one
//! of the K real classes rather than the (K+1)-th, "generated", whose logit is fixed at 0.
//!
//! The discriminator is a `cnn` classifier (conv blocks, hidden layers, output layer), so a
//! trained run is read by `predict`, `eval` and `compare` as any classifier; the generator is
//! the DCGAN's (`models::gan`) with no classes to condition on.

use anyhow::Result;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::cnn::{BlockConfig, Cnn, CnnConfig, validate_layers};
use super::gan::{Generator, generator};
use crate::data::InputShape;

/// `[model] kind = "ssgan"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SsganConfig {
    /// The classifier's conv blocks, as `cnn`'s.
    pub blocks: Vec<BlockConfig>,
    /// Widths of its hidden fully connected layers; the last one's activations are the features
    /// the generator's feature matching compares.
    pub hidden: Vec<usize>,
    /// Dropout before each fully connected layer.
    pub dropout: f64,
    /// Size of the generator's noise vector z.
    pub latent: usize,
    /// Channels of the generator's last hidden layer (the first has twice as many).
    pub g_channels: usize,
}

impl Default for SsganConfig {
    fn default() -> Self {
        let block = |channels| BlockConfig {
            channels,
            batch_norm: false,
            dropout: 0.2,
            ..Default::default()
        };
        Self {
            blocks: vec![block(32), block(64)],
            hidden: vec![128],
            dropout: 0.3,
            latent: 64,
            g_channels: 64,
        }
    }
}

/// The generator's label embedding: one "class", so a single learned vector beside the noise.
const EMBED: usize = 1;

impl SsganConfig {
    pub fn validate(&self) -> Result<(), String> {
        validate_layers(&self.blocks, &self.hidden, self.dropout)?;
        if self.hidden.is_empty() {
            return Err(
                "hidden must name at least one layer (its activations are the features the \
                 generator matches)"
                    .into(),
            );
        }
        for (key, v) in [("latent", self.latent), ("g_channels", self.g_channels)] {
            if v == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        Ok(())
    }

    /// The classifier alone (what `predict`, `eval` and `compare` read).
    pub fn classifier(&self, input: InputShape, classes: usize, device: &Device) -> Result<Cnn> {
        CnnConfig {
            blocks: self.blocks.clone(),
            hidden: self.hidden.clone(),
            dropout: self.dropout,
        }
        .init(input, classes, device)
    }

    /// The generator and the classifier for images of `input` (height and width divisible by
    /// 4) in `classes` classes.
    pub fn init(
        &self,
        input: InputShape,
        classes: usize,
        device: &Device,
    ) -> Result<(Generator, Cnn)> {
        let g = generator(input, 1, self.latent, EMBED, self.g_channels, device)?;
        Ok((g, self.classifier(input, classes, device)?))
    }
}

/// Logits `[b, k]` → log Z = log Σₖ exp lₖ `[b]`, computed stably.
pub fn log_partition(logits: Tensor<2>) -> Tensor<1> {
    let m = logits.clone().max_dim(1).detach(); // [b, 1]
    let z = (logits - m.clone()).exp().sum_dim(1).log(); // [b, 1]
    (z + m).flatten::<1>(0, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_data_and_the_generator_draws_the_data_shape() {
        let device = Device::flex();
        let shape = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let (g, d) = SsganConfig::default().init(shape, 10, &device).unwrap();
        let z = Tensor::<2>::zeros([3, 64], &device);
        let y = Tensor::<1, Int>::zeros([3], &device);
        let x = g.forward(z, y);
        assert_eq!(x.dims(), [3, 1, 28, 28]);
        let (features, logits) = d.penultimate(x);
        assert_eq!(features.dims(), [3, 128]);
        assert_eq!(logits.dims(), [3, 10]);
    }

    #[test]
    fn log_partition_is_log_sum_exp_even_for_large_logits() {
        let device = Device::flex();
        let l = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 1000.0, 1000.0], [2, 2]),
            &device,
        );
        let v: Vec<f32> = log_partition(l)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let ln2 = 2f32.ln();
        assert!((v[0] - ln2).abs() < 1e-6, "{v:?}");
        assert!((v[1] - (1000.0 + ln2)).abs() < 1e-3, "{v:?}");
        let none = SsganConfig {
            hidden: vec![],
            ..Default::default()
        };
        assert!(none.validate().unwrap_err().starts_with("hidden"));
    }
}
