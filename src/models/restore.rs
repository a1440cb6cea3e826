//! The restoring network (pix2pix-style): a small U-Net generator with skip connections that
//! maps a damaged image (brought to full size, plus the missing-pixel mask when there is a hole)
//! to a repaired one, and a patch discriminator that scores overlapping patches of a (damaged,
//! candidate) pair as real or repaired.
//!
//! The generator predicts a correction added to its input image, in pixel space [0, 1]: the
//! damaged image at full size (bicubic) with its hole filled harmonically. A network that has
//! learned nothing returns that first classical guess.

use anyhow::{Result, bail};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use fovea_kernels::{leaky_relu, relu};
use serde::{Deserialize, Serialize};

use super::layers::{convolve, convolve_transpose, pool};
use crate::data::InputShape;
use crate::restore::DamageConfig;

/// `[model] kind = "restore"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreConfig {
    /// What is done to the clean images the network learns to repair, on the fly
    /// (`[model.damage]`): it decides the network's input (a hole's mask is an extra channel)
    /// and its output's size.
    pub damage: DamageConfig,
    /// Channels of the U-Net's first level (doubled at each of the two levels below).
    pub channels: usize,
    /// Channels of the patch discriminator's first layer.
    pub d_channels: usize,
}

impl Default for RestoreConfig {
    fn default() -> Self {
        Self {
            damage: DamageConfig::default(),
            channels: 16,
            d_channels: 32,
        }
    }
}

impl RestoreConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.damage.validate()?;
        for (key, v) in [("channels", self.channels), ("d_channels", self.d_channels)] {
            if v == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        Ok(())
    }

    /// Channels the generator reads: the image's, plus the mask's when there is a hole.
    pub fn input_channels(&self, shape: InputShape) -> usize {
        shape.channels + usize::from(self.damage.hole > 0)
    }

    /// The U-Net and the patch discriminator for clean images of `shape`.
    pub fn init(&self, shape: InputShape, device: &Device) -> Result<(UNet, PatchDiscriminator)> {
        self.damage
            .damaged_shape(shape)
            .map_err(|e| anyhow::anyhow!("model.{e}"))?;
        if shape.height < 4 || shape.width < 4 {
            bail!(
                "model.kind = \"restore\" needs images of at least 4 × 4 pixels; these are {shape}"
            );
        }
        let c = self.channels;
        let conv = |i: usize, o: usize| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        let up = |i: usize, o: usize| {
            ConvTranspose2dConfig::new([i, o], [2, 2])
                .with_stride([2, 2])
                .init(device)
        };
        let unet = UNet {
            e1a: conv(self.input_channels(shape), c),
            e1b: conv(c, c),
            e2a: conv(c, 2 * c),
            e2b: conv(2 * c, 2 * c),
            ba: conv(2 * c, 4 * c),
            bb: conv(4 * c, 4 * c),
            up2: up(4 * c, 2 * c),
            d2a: conv(4 * c, 2 * c),
            d2b: conv(2 * c, 2 * c),
            up1: up(2 * c, c),
            d1a: conv(2 * c, c),
            d1b: conv(c, c),
            out: Conv2dConfig::new([c, shape.channels], [1, 1]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        };
        let d = self.d_channels;
        let down = |i: usize, o: usize| {
            Conv2dConfig::new([i, o], [4, 4])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let disc = PatchDiscriminator {
            conv1: down(2 * shape.channels, d),
            conv2: down(d, 2 * d),
            score: Conv2dConfig::new([2 * d, 1], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
        };
        Ok((unet, disc))
    }
}

#[derive(Module, Debug)]
pub struct UNet {
    e1a: Conv2d,
    e1b: Conv2d,
    e2a: Conv2d,
    e2b: Conv2d,
    ba: Conv2d,
    bb: Conv2d,
    up2: ConvTranspose2d,
    d2a: Conv2d,
    d2b: Conv2d,
    up1: ConvTranspose2d,
    d1a: Conv2d,
    d1b: Conv2d,
    out: Conv2d,
    pool: MaxPool2d,
}

impl UNet {
    /// `input` `[b, c (+1 mask), h, w]` and the image it corrects `[b, c, h, w]` (both at full
    /// size, any h and w) → the repaired image `[b, c, h, w]`. Sizes that are not multiples of
    /// 4 are padded with zeros for the two poolings and cropped back.
    pub fn forward(&self, input: Tensor<4>, image: Tensor<4>) -> Tensor<4> {
        let [b, _, h, w] = input.dims();
        let [_, c, ..] = image.dims();
        let (ph, pw) = (h.next_multiple_of(4) - h, w.next_multiple_of(4) - w);
        let x = if ph + pw > 0 {
            input.pad((0, pw, 0, ph), PadMode::Constant(0.0))
        } else {
            input
        };
        // on flex, fovea's kernels for every layer (as the CNN's), Burn's elsewhere
        let block = |x: Tensor<4>, a: &Conv2d, b: &Conv2d| relu(convolve(b, relu(convolve(a, x))));
        let s1 = block(x, &self.e1a, &self.e1b); // [b, c, H, W]
        let s2 = block(pool(&self.pool, s1.clone()), &self.e2a, &self.e2b); // [b, 2c, H/2, W/2]
        let x = block(pool(&self.pool, s2.clone()), &self.ba, &self.bb); // [b, 4c, H/4, W/4]
        let x = Tensor::cat(vec![convolve_transpose(&self.up2, x), s2], 1);
        let x = block(x, &self.d2a, &self.d2b);
        let x = Tensor::cat(vec![convolve_transpose(&self.up1, x), s1], 1);
        let x = convolve(&self.out, block(x, &self.d1a, &self.d1b)); // [b, c, H, W]
        let x = if ph + pw > 0 {
            x.slice([0..b, 0..c, 0..h, 0..w])
        } else {
            x
        };
        image + x
    }
}

#[derive(Module, Debug)]
pub struct PatchDiscriminator {
    conv1: Conv2d,
    conv2: Conv2d,
    score: Conv2d,
}

impl PatchDiscriminator {
    /// The damaged image at full size and a candidate (both `[b, c, h, w]`, pixels) → one logit
    /// per patch `[b, 1, h/4, w/4]` (real > 0 > repaired).
    pub fn forward(&self, damaged: Tensor<4>, candidate: Tensor<4>) -> Tensor<4> {
        let x = Tensor::cat(vec![damaged, candidate], 1)
            .mul_scalar(2.0)
            .sub_scalar(1.0);
        let x = leaky_relu(convolve(&self.conv1, x), 0.2);
        let x = leaky_relu(convolve(&self.conv2, x), 0.2);
        convolve(&self.score, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unet_keeps_any_size_and_the_discriminator_scores_patches() {
        let device = Device::flex();
        let cfg = RestoreConfig {
            damage: DamageConfig {
                hole: 3,
                ..Default::default()
            },
            channels: 4,
            d_channels: 4,
            ..Default::default()
        };
        for (c, h, w) in [(1, 28, 28), (1, 27, 13), (3, 9, 30), (1, 5, 7)] {
            let shape = InputShape {
                channels: c,
                height: h,
                width: w,
            };
            let (g, d) = cfg.init(shape, &device).unwrap();
            let input = Tensor::<4>::ones([2, c + 1, h, w], &device);
            let image = Tensor::<4>::ones([2, c, h, w], &device);
            let out = g.forward(input, image.clone());
            assert_eq!(out.dims(), [2, c, h, w]);
            let p = d.forward(image, out);
            // 4×4 convolutions of stride 2 and padding 1 halve (rounding down), twice
            assert_eq!(p.dims(), [2, 1, h / 2 / 2, w / 2 / 2]);
        }
        let tiny = InputShape {
            channels: 1,
            height: 3,
            width: 8,
        };
        assert!(cfg.init(tiny, &device).is_err());
    }
}
