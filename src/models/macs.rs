//! Multiply-adds of one image's forward pass, counted from a model's config: the work of its
//! convolutions, matrix products and recurrent gates (element-wise operations, pooling and
//! normalization are not counted). `fovea bench` turns them into achieved GFLOP/s.

use super::ModelConfig;
use super::cnn::BlockConfig;
use super::rnn::{Cell, Scan, SeqSpec};
use crate::data::InputShape;

impl ModelConfig {
    /// Multiply-adds of one image's forward pass; `None` for the kinds not counted (the GAN and
    /// restoration networks, and the kernel SVM, whose training is not a forward pass).
    pub fn forward_macs(&self, input: InputShape, classes: usize) -> Option<u64> {
        let dense =
            |widths: &[usize]| -> u64 { widths.windows(2).map(|w| (w[0] * w[1]) as u64).sum() };
        match self {
            ModelConfig::Cnn(c) => Some(cnn_macs(&c.blocks, &c.hidden, input, classes)),
            // the classifier (the generator is not counted)
            ModelConfig::Ssgan(c) => Some(cnn_macs(&c.blocks, &c.hidden, input, classes)),
            ModelConfig::CnnLif(c) => {
                // the fully connected spiking layers run once per time step
                let (convs, out) = conv_macs(&c.blocks, input);
                let mut widths = vec![out.pixels()];
                widths.extend(&c.hidden);
                widths.push(classes);
                Some(convs + c.steps as u64 * dense(&widths))
            }
            ModelConfig::Rnn(c) => {
                let spec = c.spec();
                let rows = (input.height, input.channels * input.width);
                let columns = (input.width, input.channels * input.height);
                let scans = match c.scan {
                    Scan::Rows => vec![rows],
                    Scan::Columns => vec![columns],
                    Scan::RowsColumns => vec![rows, columns],
                };
                let encoders: u64 = scans.iter().map(|&(t, f)| seq_macs(&spec, t, f)).sum();
                Some(encoders + (spec.output_width() * scans.len() * classes) as u64)
            }
            ModelConfig::CnnRnn(c) => {
                let spec = c.spec();
                let (convs, out) = conv_macs(&c.blocks, input);
                let seq = seq_macs(&spec, out.height, out.channels * out.width);
                Some(convs + seq + (spec.output_width() * classes) as u64)
            }
            ModelConfig::Svm(c) => c.forward_macs(input, classes),
            ModelConfig::Gan(_) | ModelConfig::Restore(_) | ModelConfig::KernelSvm(_) => None,
        }
    }
}

/// A `cnn` classifier's multiply-adds: its conv blocks, hidden layers and output layer.
fn cnn_macs(blocks: &[BlockConfig], hidden: &[usize], input: InputShape, classes: usize) -> u64 {
    let (convs, out) = conv_macs(blocks, input);
    let mut widths = vec![out.pixels()];
    widths.extend(hidden);
    widths.push(classes);
    convs + widths.windows(2).map(|w| (w[0] * w[1]) as u64).sum::<u64>()
}

/// The conv blocks' multiply-adds (stride 1, "same" padding) and their output shape.
pub fn conv_macs(blocks: &[BlockConfig], input: InputShape) -> (u64, InputShape) {
    let mut s = input;
    let mut macs = 0u64;
    for b in blocks {
        macs += (s.channels * b.kernel * b.kernel * b.channels * s.height * s.width) as u64;
        s = InputShape {
            channels: b.channels,
            height: s.height / b.pool,
            width: s.width / b.pool,
        };
    }
    (macs, s)
}

/// A recurrent encoder over `steps` time steps of `features` inputs: per step and direction,
/// each gate multiplies the input and the previous hidden state by its weights.
fn seq_macs(spec: &SeqSpec, steps: usize, features: usize) -> u64 {
    let gates = match spec.cell {
        Cell::Lstm => 4,
        Cell::Gru => 3,
    };
    let dirs = if spec.bidirectional { 2 } else { 1 };
    let mut input = features;
    let mut macs = 0u64;
    for _ in 0..spec.layers {
        macs += (dirs * steps * gates * (input + spec.hidden) * spec.hidden) as u64;
        input = spec.output_width();
    }
    macs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::cnn::CnnConfig;
    use crate::models::rnn::RnnConfig;

    const MNIST: InputShape = InputShape::MNIST;

    #[test]
    fn the_reference_cnn_counts_its_convolutions_and_layers() {
        let macs = ModelConfig::Cnn(CnnConfig::default()).forward_macs(MNIST, 10);
        // conv 1→32 at 28×28, conv 32→64 at 14×14, fc 3136→128, fc 128→10
        let want = 9 * 32 * 784 + 32 * 9 * 64 * 196 + 3136 * 128 + 128 * 10;
        assert_eq!(macs, Some(want));
    }

    #[test]
    fn a_recurrent_layer_counts_every_gate_step_and_direction() {
        let cfg = RnnConfig {
            cell: Cell::Gru,
            hidden: 8,
            layers: 2,
            bidirectional: true,
            ..RnnConfig::default()
        };
        let first = 2 * 28 * 3 * (28 + 8) * 8;
        let second = 2 * 28 * 3 * (16 + 8) * 8;
        assert_eq!(
            ModelConfig::Rnn(cfg).forward_macs(MNIST, 10),
            Some((first + second + 16 * 10) as u64)
        );
    }
}
