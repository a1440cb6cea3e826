//! An image as floats in [0, 1], channel after channel: what damage, the classical baselines
//! and the quality measures work on, on the host.

use anyhow::{Result, bail};

use crate::data::InputShape;

#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub shape: InputShape,
    /// `channels × height × width` values, row-major within each channel's plane.
    pub px: Vec<f32>,
}

impl Image {
    pub fn new(shape: InputShape, px: Vec<f32>) -> Result<Self> {
        if px.len() != shape.pixels() {
            bail!(
                "an image of {shape} holds {} values, not {}",
                shape.pixels(),
                px.len()
            );
        }
        Ok(Self { shape, px })
    }

    pub fn zeros(shape: InputShape) -> Self {
        Self {
            shape,
            px: vec![0.0; shape.pixels()],
        }
    }

    pub fn from_bytes(shape: InputShape, bytes: &[u8]) -> Result<Self> {
        Self::new(shape, bytes.iter().map(|&b| b as f32 / 255.0).collect())
    }

    /// Pixel bytes, rounded and clamped.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.px
            .iter()
            .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
            .collect()
    }

    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.shape.height * self.shape.width;
        &self.px[c * n..(c + 1) * n]
    }

    pub fn plane_mut(&mut self, c: usize) -> &mut [f32] {
        let n = self.shape.height * self.shape.width;
        &mut self.px[c * n..(c + 1) * n]
    }

    /// Each pixel repeated `k × k` times (what a low-resolution image looks like at full size).
    pub fn nearest_up(&self, k: usize) -> Image {
        let s = self.shape;
        let shape = InputShape {
            channels: s.channels,
            height: s.height * k,
            width: s.width * k,
        };
        let mut out = Image::zeros(shape);
        for c in 0..s.channels {
            let src = self.plane(c);
            let dst = out.plane_mut(c);
            for y in 0..shape.height {
                for x in 0..shape.width {
                    dst[y * shape.width + x] = src[(y / k) * s.width + x / k];
                }
            }
        }
        out
    }
}
