//! The CNN: configurable conv blocks (conv → batch norm → ReLU → max pool → dropout; computed as
//! max pool then ReLU, the same function), flattened
//! into fully connected layers, then a linear output layer (softmax is applied by the loss).
//!
//! The reference (`config/cnn.toml`) follows the survey: two blocks of 32 and 64 channels, each
//! halving the image, so a 28×28 input reaches the 64×7×7 = 3136-neuron "V4" layer.

use anyhow::{Result, bail};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::layers::{convolve, is_2x2, normalize, pool};
use crate::data::InputShape;

/// One conv block of `[model] blocks = [...]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BlockConfig {
    /// Output channels.
    pub channels: usize,
    /// Square kernel size (odd; padded to keep the size).
    pub kernel: usize,
    pub batch_norm: bool,
    /// Max-pool window and stride (1 = no pooling).
    pub pool: usize,
    /// Dropout after the block (0 = none).
    pub dropout: f64,
}

impl Default for BlockConfig {
    fn default() -> Self {
        Self {
            channels: 32,
            kernel: 3,
            batch_norm: true,
            pool: 2,
            dropout: 0.0,
        }
    }
}

/// `[model] kind = "cnn"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CnnConfig {
    pub blocks: Vec<BlockConfig>,
    /// Widths of the hidden fully connected layers.
    pub hidden: Vec<usize>,
    /// Dropout before each fully connected layer.
    pub dropout: f64,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            blocks: reference_blocks(),
            hidden: vec![128],
            dropout: 0.3,
        }
    }
}

impl CnnConfig {
    pub fn validate(&self) -> Result<(), String> {
        validate_layers(&self.blocks, &self.hidden, self.dropout)
    }

    /// The feature-map shape after the conv blocks, or an error if pooling shrinks it to nothing.
    pub fn feature_shape(&self, input: InputShape) -> Result<InputShape> {
        feature_shape(&self.blocks, input)
    }

    pub fn init(&self, input: InputShape, classes: usize, device: &Device) -> Result<Cnn> {
        let (blocks, features) = ConvStack::init(&self.blocks, input, device)?;
        let mut width = features.pixels();
        let hidden = self
            .hidden
            .iter()
            .map(|&h| {
                let layer = LinearConfig::new(width, h).init(device);
                width = h;
                layer
            })
            .collect();
        Ok(Cnn {
            blocks,
            hidden,
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(width, classes).init(device),
            activation: Relu::new(),
        })
    }
}

/// The reference conv blocks: 32 then 64 channels, each halving the image (28×28 → 64×7×7).
pub fn reference_blocks() -> Vec<BlockConfig> {
    [32, 64]
        .map(|channels| BlockConfig {
            channels,
            ..Default::default()
        })
        .to_vec()
}

/// Checks `blocks`, `hidden` and `dropout`, the keys `cnn` shares with `cnn-lif`.
pub fn validate_layers(
    blocks: &[BlockConfig],
    hidden: &[usize],
    dropout: f64,
) -> Result<(), String> {
    validate_blocks(blocks)?;
    if let Some(i) = hidden.iter().position(|&h| h == 0) {
        return Err(format!("hidden[{i}] must be at least 1"));
    }
    if !(0.0..1.0).contains(&dropout) {
        return Err(format!("dropout must be in [0, 1) (got {dropout})"));
    }
    Ok(())
}

/// Checks `blocks = [...]`; errors name the block.
pub fn validate_blocks(blocks: &[BlockConfig]) -> Result<(), String> {
    for (i, b) in blocks.iter().enumerate() {
        if b.channels == 0 {
            return Err(format!("blocks[{i}].channels must be at least 1"));
        }
        if b.kernel == 0 || b.kernel % 2 == 0 {
            return Err(format!("blocks[{i}].kernel must be odd (got {})", b.kernel));
        }
        if b.pool == 0 {
            return Err(format!(
                "blocks[{i}].pool must be at least 1 (1 = no pooling)"
            ));
        }
        if !(0.0..1.0).contains(&b.dropout) {
            return Err(format!(
                "blocks[{i}].dropout must be in [0, 1) (got {})",
                b.dropout
            ));
        }
    }
    Ok(())
}

/// The feature-map shape after `blocks`, or an error if pooling shrinks it to nothing.
pub fn feature_shape(blocks: &[BlockConfig], input: InputShape) -> Result<InputShape> {
    let mut s = input;
    for (i, b) in blocks.iter().enumerate() {
        s = InputShape {
            channels: b.channels,
            height: s.height / b.pool,
            width: s.width / b.pool,
        };
        if s.height == 0 || s.width == 0 {
            bail!(
                "model.blocks[{i}]: pooling shrinks a {input} image to nothing; use fewer blocks or pool = 1"
            );
        }
    }
    Ok(s)
}

/// The convolutional feature extractor shared by `cnn` and `cnn-rnn`.
#[derive(Module, Debug)]
pub struct ConvStack {
    blocks: Vec<ConvBlock>,
}

impl ConvStack {
    /// Builds the blocks for `input` images; returns the stack and its output shape.
    pub fn init(
        blocks: &[BlockConfig],
        input: InputShape,
        device: &Device,
    ) -> Result<(ConvStack, InputShape)> {
        let features = feature_shape(blocks, input)?;
        let mut in_ch = input.channels;
        let blocks = blocks
            .iter()
            .map(|b| {
                let block = ConvBlock {
                    conv: Conv2dConfig::new([in_ch, b.channels], [b.kernel, b.kernel])
                        .with_padding(PaddingConfig2d::Same)
                        .with_bias(!b.batch_norm)
                        .init(device),
                    norm: b
                        .batch_norm
                        .then(|| BatchNormConfig::new(b.channels).init(device)),
                    pool: (b.pool > 1).then(|| MaxPool2dConfig::new([b.pool, b.pool]).init()),
                    dropout: (b.dropout > 0.0).then(|| DropoutConfig::new(b.dropout).init()),
                    activation: Relu::new(),
                };
                in_ch = b.channels;
                block
            })
            .collect();
        Ok((ConvStack { blocks }, features))
    }

    /// `[b, c, h, w]` → `[b, c', h', w']`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        self.blocks.iter().fold(images, |x, b| b.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct ConvBlock {
    conv: Conv2d,
    norm: Option<BatchNorm>,
    pool: Option<MaxPool2d>,
    dropout: Option<Dropout>,
    activation: Relu,
}

impl ConvBlock {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = convolve(&self.conv, x); // [b, out, h, w]
        // batch norm may pool 2 × 2 in the same pass (on flex), saying so
        let pool_2x2 = self.pool.as_ref().is_some_and(is_2x2);
        let (x, pooled) = match &self.norm {
            Some(n) => normalize(n, x, pool_2x2),
            None => (x, false),
        };
        // Max-pooling then ReLU equals ReLU then max-pooling (both are monotonic, and the
        // gradient reaches the same pixel), with ReLU on a quarter of the values.
        let x = match &self.pool {
            Some(p) if !pooled => pool(p, x), // [b, out, h/pool, w/pool]
            _ => x,
        };
        let x = self.activation.forward(x);
        match &self.dropout {
            Some(d) => fovea_kernels::dropout(d, x),
            None => x,
        }
    }
}

#[derive(Module, Debug)]
pub struct Cnn {
    blocks: ConvStack,
    hidden: Vec<Linear>,
    dropout: Dropout,
    output: Linear,
    activation: Relu,
}

impl Cnn {
    /// The last conv block's output, flattened: `[b, c·h·w]` (the "V4" layer of the reference).
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.blocks.forward(images).flatten(1, 3) // [b, c·h·w]
    }

    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.penultimate(images).1
    }

    /// The last hidden layer's activations `[b, hidden]` (the V4 layer without hidden layers)
    /// and the logits `[b, classes]`.
    pub fn penultimate(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let mut x = self.features(images);
        for layer in &self.hidden {
            let x_in = fovea_kernels::dropout(&self.dropout, x);
            x = self.activation.forward(fovea_kernels::linear(layer, x_in)); // [b, hidden]
        }
        let x_in = fovea_kernels::dropout(&self.dropout, x.clone());
        let logits = fovea_kernels::linear(&self.output, x_in); // [b, classes]
        (x, logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_reaches_the_v4_layer() {
        let shape = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let f = CnnConfig::default().feature_shape(shape).unwrap();
        assert_eq!(
            (f.channels, f.height, f.width, f.pixels()),
            (64, 7, 7, 3136)
        );
    }

    #[test]
    fn forward_shapes() {
        let device = Device::flex();
        for (c, h) in [(1, 28), (3, 32)] {
            let shape = InputShape {
                channels: c,
                height: h,
                width: h,
            };
            let model = CnnConfig::default().init(shape, 10, &device).unwrap();
            let x = Tensor::<4>::zeros([5, c, h, h], &device);
            assert_eq!(
                model.features(x.clone()).dims(),
                [5, 64 * (h / 4) * (h / 4)]
            );
            assert_eq!(model.forward(x).dims(), [5, 10]);
        }
    }
}
