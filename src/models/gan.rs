//! The conditional DCGAN: a class-conditioned generator (label embedding, transposed
//! convolutions, batch norm, tanh) and a discriminator (strided convolutions, leaky ReLU) that
//! reads the label by projection: D(x, y) = ψ(h) + ⟨embed(y), h⟩ with h the image's features.
//!
//! The generator draws images of the dataset's shape; its tanh output in [−1, 1] is mapped to
//! pixels in [0, 1] and then to the normalized space the discriminator and classifiers read.

use anyhow::{Result, bail};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::prelude::*;
use fovea_kernels::{leaky_relu, linear, relu, tanh};
use serde::{Deserialize, Serialize};

use super::layers::{convolve, convolve_transpose, normalize};
use crate::data::InputShape;

/// `[model] kind = "gan"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GanConfig {
    /// Size of the noise vector z.
    pub latent: usize,
    /// Size of the generator's label embedding.
    pub embed: usize,
    /// Channels of the generator's last hidden layer (the first has twice as many).
    pub g_channels: usize,
    /// Channels of the discriminator's first layer (the second has twice as many).
    pub d_channels: usize,
}

impl Default for GanConfig {
    fn default() -> Self {
        Self {
            latent: 64,
            embed: 32,
            g_channels: 64,
            d_channels: 64,
        }
    }
}

impl GanConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("latent", self.latent),
            ("embed", self.embed),
            ("g_channels", self.g_channels),
            ("d_channels", self.d_channels),
        ] {
            if v == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        Ok(())
    }

    /// The generator and discriminator for images of `shape` (height and width divisible by 4)
    /// in `classes` classes.
    pub fn init(
        &self,
        shape: InputShape,
        classes: usize,
        device: &Device,
    ) -> Result<(Generator, Discriminator)> {
        let generator = generator(
            shape,
            classes,
            self.latent,
            self.embed,
            self.g_channels,
            device,
        )?;
        let (h, w) = (shape.height / 4, shape.width / 4);
        let d = self.d_channels;
        let down = |i: usize, o: usize, bias: bool| {
            Conv2dConfig::new([i, o], [4, 4])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(bias)
                .init(device)
        };
        let discriminator = Discriminator {
            conv1: down(shape.channels, d, true),
            conv2: down(d, 2 * d, false),
            norm2: BatchNormConfig::new(2 * d).init(device),
            score: LinearConfig::new(2 * d * h * w, 1).init(device),
            // Projection vectors scaled so that ⟨embed(y), h⟩ starts of the order of one.
            embed: EmbeddingConfig::new(classes, 2 * d * h * w)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 1.0 / ((2 * d * h * w) as f64).sqrt(),
                })
                .init(device),
        };
        Ok((generator, discriminator))
    }
}

/// The DCGAN generator for images of `shape` (height and width divisible by 4) in `classes`
/// classes: noise of `latent` values and a label embedding of `embed` values, projected to a
/// `2g`-channel grid of a quarter of the image's side, then two transposed convolutions (`g`
/// channels, then the image's).
pub fn generator(
    shape: InputShape,
    classes: usize,
    latent: usize,
    embed_size: usize,
    g: usize,
    device: &Device,
) -> Result<Generator> {
    if shape.height % 4 != 0 || shape.width % 4 != 0 || shape.height < 4 || shape.width < 4 {
        bail!(
            "a GAN draws images whose height and width are multiples of 4; \
             the data's images are {shape} (set data.image_size to e.g. 28 or 32)"
        );
    }
    let (h, w) = (shape.height / 4, shape.width / 4);
    let up = |i: usize, o: usize| {
        ConvTranspose2dConfig::new([i, o], [4, 4])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .init(device)
    };
    Ok(Generator {
        embed: EmbeddingConfig::new(classes, embed_size).init(device),
        project: LinearConfig::new(latent + embed_size, 2 * g * h * w).init(device),
        norm0: BatchNormConfig::new(2 * g).init(device),
        up1: up(2 * g, g),
        norm1: BatchNormConfig::new(g).init(device),
        up2: up(g, shape.channels),
        latent,
        grid: [2 * g, h, w],
    })
}

/// Labels `[b]` → embeddings `[b, d]`.
fn embed(e: &Embedding, labels: Tensor<1, Int>) -> Tensor<2> {
    let [b] = labels.dims();
    e.forward(labels.reshape([b, 1])).flatten::<2>(1, 2) // [b, d]
}

#[derive(Module, Debug)]
pub struct Generator {
    embed: Embedding,
    project: Linear,
    norm0: BatchNorm,
    up1: ConvTranspose2d,
    norm1: BatchNorm,
    up2: ConvTranspose2d,
    #[module(skip)]
    latent: usize,
    #[module(skip)]
    grid: [usize; 3],
}

impl Generator {
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// Standard normal noise `[b, latent]` from `device`'s random generator (seeded per step
    /// in training, so that resume is exact).
    pub fn noise(&self, b: usize, device: &Device) -> Tensor<2> {
        Tensor::random(
            [b, self.latent],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        )
    }

    /// Noise `[b, latent]` and labels `[b]` → images `[b, c, h, w]` in [−1, 1].
    pub fn forward(&self, z: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<4> {
        let [b, _] = z.dims();
        let [c, h, w] = self.grid;
        let x = Tensor::cat(vec![z, embed(&self.embed, labels)], 1); // [b, latent + embed]
        let x = linear(&self.project, x).reshape([b, c, h, w]);
        let x = relu(normalize(&self.norm0, x, false).0);
        let x = convolve_transpose(&self.up1, x);
        let x = relu(normalize(&self.norm1, x, false).0); // [b, g, 2h, 2w]
        tanh(convolve_transpose(&self.up2, x)) // [b, channels, 4h, 4w]
    }
}

#[derive(Module, Debug)]
pub struct Discriminator {
    conv1: Conv2d,
    conv2: Conv2d,
    norm2: BatchNorm,
    score: Linear,
    embed: Embedding,
}

impl Discriminator {
    /// Images `[b, c, h, w]` (normalized) and labels `[b]` → logits `[b]` (real > 0 > fake).
    pub fn forward(&self, images: Tensor<4>, labels: Tensor<1, Int>) -> Tensor<1> {
        let x = leaky_relu(convolve(&self.conv1, images), 0.2); // [b, d, h/2, w/2]
        let x = normalize(&self.norm2, convolve(&self.conv2, x), false).0;
        let x = leaky_relu(x, 0.2); // [b, 2d, h/4, w/4]
        let h = x.flatten::<2>(1, 3); // [b, 2d·h/4·w/4]
        let projection = (embed(&self.embed, labels) * h.clone()).sum_dim(1); // [b, 1]
        (linear(&self.score, h) + projection).flatten::<1>(0, 1) // [b]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_data() {
        let device = Device::flex();
        for (c, side) in [(1, 28), (3, 32)] {
            let shape = InputShape {
                channels: c,
                height: side,
                width: side,
            };
            let (g, d) = GanConfig::default().init(shape, 10, &device).unwrap();
            let z = Tensor::<2>::zeros([5, 64], &device);
            let y =
                Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 3, 9], [5]), &device);
            let x = g.forward(z, y.clone());
            assert_eq!(x.dims(), [5, c, side, side]);
            let v = x.clone().abs().max().into_scalar::<f32>();
            assert!(v <= 1.0, "tanh output {v}");
            assert_eq!(d.forward(x, y).dims(), [5]);
        }
        let odd = InputShape {
            channels: 1,
            height: 30,
            width: 30,
        };
        let e = GanConfig::default().init(odd, 10, &device).unwrap_err();
        assert!(e.to_string().contains("multiples of 4"), "{e}");
    }
}
