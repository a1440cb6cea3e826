//! The CNN-RNN hybrid: the CNN's conv blocks extract a feature map, whose rows are read as a
//! sequence by LSTM/GRU layers, then a linear classifier.

use anyhow::Result;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;

use super::cnn::{BlockConfig, ConvStack, reference_blocks, validate_blocks};
use super::rnn::{Cell, Readout, SeqEncoder, SeqSpec, recurrent_config, rows};
use crate::data::InputShape;

recurrent_config! {
    /// `[model] kind = "cnn-rnn"`.
    pub struct CnnRnnConfig {
        /// Conv blocks, as in `kind = "cnn"`.
        pub blocks: Vec<BlockConfig>,
    }
}

impl Default for CnnRnnConfig {
    fn default() -> Self {
        Self::with_spec(
            reference_blocks(),
            SeqSpec {
                cell: Cell::Lstm,
                hidden: 128,
                layers: 1,
                bidirectional: true,
                dropout: 0.3,
                readout: Readout::Mean,
            },
        )
    }
}

impl CnnRnnConfig {
    pub fn validate(&self) -> Result<(), String> {
        validate_blocks(&self.blocks)?;
        self.spec().validate()
    }

    pub fn init(&self, input: InputShape, classes: usize, device: &Device) -> Result<CnnRnn> {
        let (convs, map) = ConvStack::init(&self.blocks, input, device)?;
        let spec = self.spec();
        Ok(CnnRnn {
            convs,
            encoder: SeqEncoder::init(&spec, map.channels * map.width, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(spec.output_width(), classes).init(device),
        })
    }
}

#[derive(Module, Debug)]
pub struct CnnRnn {
    convs: ConvStack,
    encoder: SeqEncoder,
    dropout: Dropout,
    output: Linear,
}

impl CnnRnn {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let map = self.convs.forward(images); // [b, c, h', w']
        let x = self.encoder.forward(rows(map)); // [b, hidden·dirs]
        self.output
            .forward(fovea_kernels::dropout(&self.dropout, x)) // [b, classes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_shapes_grayscale_and_colour() {
        let device = Device::flex();
        for cell in [Cell::Lstm, Cell::Gru] {
            let cfg = CnnRnnConfig {
                cell,
                hidden: 16,
                ..Default::default()
            };
            for (c, h) in [(1, 28), (3, 32)] {
                let model = cfg
                    .init(
                        InputShape {
                            channels: c,
                            height: h,
                            width: h,
                        },
                        10,
                        &device,
                    )
                    .unwrap();
                assert_eq!(
                    model
                        .forward(Tensor::<4>::zeros([2, c, h, h], &device))
                        .dims(),
                    [2, 10]
                );
            }
        }
    }
}
