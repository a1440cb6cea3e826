//! How much memory a model of a config needs, counted from the config before anything is
//! allocated: a config whose model cannot fit this machine is refused with the keys that size it,
//! instead of the process aborting mid-allocation. The counts are estimates (within a small
//! factor), in 128-bit integers so that no config can overflow them.

use anyhow::{Result, anyhow};

use super::ModelConfig;
use super::cnn::BlockConfig;
use super::rnn::{Cell, SeqSpec};
use crate::data::InputShape;
use crate::device;

/// Bytes per weight while training: the weight, its gradient and Adam's two moments.
const BYTES_PER_WEIGHT: u128 = 16;
/// Bytes per activation value kept for the backward pass: the value and its gradient.
const BYTES_PER_ACTIVATION: u128 = 8;

/// A model's size: its weights, and the values one image's forward pass keeps for the backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub weights: u128,
    pub activations: u128,
}

impl Footprint {
    fn add(self, other: Footprint) -> Footprint {
        Footprint {
            weights: self.weights + other.weights,
            activations: self.activations + other.activations,
        }
    }

    /// The bytes of training on batches of `batch` images.
    pub fn training_bytes(&self, batch: usize) -> u128 {
        self.weights * BYTES_PER_WEIGHT + self.activations * batch as u128 * BYTES_PER_ACTIVATION
    }
}

impl ModelConfig {
    /// The model's size for images of `input` shape in `classes` classes.
    pub fn footprint(&self, input: InputShape, classes: usize) -> Footprint {
        let classes = classes as u128;
        match self {
            ModelConfig::Cnn(c) => {
                let (convs, out) = conv_stack(&c.blocks, input);
                convs.add(dense(pixels(out), &c.hidden, classes))
            }
            ModelConfig::CnnLif(c) => {
                let (convs, out) = conv_stack(&c.blocks, input);
                let spiking = dense(pixels(out), &c.hidden, classes);
                convs.add(Footprint {
                    weights: spiking.weights,
                    // every time step keeps its membrane potentials and spikes
                    activations: spiking.activations * 3 * c.steps.max(1) as u128,
                })
            }
            ModelConfig::Rnn(c) => {
                let spec = c.spec();
                let steps = input.height.max(input.width) as u128;
                let features = (input.channels * input.height.max(input.width)) as u128;
                let seq = sequence(&spec, steps, features);
                // at most two scans (rows and columns)
                Footprint {
                    weights: 2 * seq.weights + out_width(&spec) * 2 * classes,
                    activations: 2 * seq.activations,
                }
            }
            ModelConfig::CnnRnn(c) => {
                let spec = c.spec();
                let (convs, out) = conv_stack(&c.blocks, input);
                let seq = sequence(
                    &spec,
                    out.height as u128,
                    (out.channels * out.width) as u128,
                );
                convs.add(seq).add(Footprint {
                    weights: out_width(&spec) * classes,
                    activations: classes,
                })
            }
            ModelConfig::Svm(c) => {
                let weights = c.forward_macs(input, classes as usize).unwrap_or(0) as u128;
                Footprint {
                    weights,
                    activations: weights / classes.max(1),
                }
            }
            ModelConfig::KernelSvm(c) => {
                let subset = c.subset as u128;
                let kernel = (subset * subset).min(c.max_kernel_mib as u128 * (1 << 20) / 4);
                Footprint {
                    weights: subset * (pixels(input) + classes) + kernel,
                    activations: subset,
                }
            }
            ModelConfig::Gan(g) => {
                let (h, w) = (input.height as u128 / 4, input.width as u128 / 4);
                let (c, hw) = (input.channels as u128, h * w);
                let dc = g.d_channels as u128;
                let discriminator = Footprint {
                    weights: c * dc * 16 + dc * 2 * dc * 16 + 2 * dc * hw * (1 + classes),
                    activations: 3 * (dc * 4 * hw + 2 * dc * hw),
                };
                generator(input, classes, g.latent, g.embed, g.g_channels).add(discriminator)
            }
            ModelConfig::Ssgan(s) => {
                let (convs, out) = conv_stack(&s.blocks, input);
                // the classifier reads three batches a step: labelled, unlabelled, generated
                let d = convs.add(dense(pixels(out), &s.hidden, classes));
                let classifier = Footprint {
                    weights: d.weights,
                    activations: 3 * d.activations,
                };
                generator(input, 1, s.latent, 1, s.g_channels).add(classifier)
            }
            ModelConfig::Restore(r) => {
                let c = r.channels as u128;
                let d = r.d_channels as u128;
                let ch = input.channels as u128;
                let hw = (input.height * input.width) as u128;
                let unet = Footprint {
                    // the 3 × 3 convolutions, the 2 × 2 up-convolutions, the 1 × 1 output
                    weights: 9 * ((ch + 1) * c + 2 * c * c + 2 * c * c + 4 * c * c + 8 * c * c)
                        + 9 * (16 * c * c + 8 * c * c + 4 * c * c + 2 * c * c + c * c)
                        + 4 * (8 * c * c + 2 * c * c)
                        + c * ch,
                    // full, half and quarter resolution
                    activations: 3 * hw * (6 * c + 6 * 2 * c / 4 + 2 * 4 * c / 16 + ch),
                };
                let patch = Footprint {
                    weights: 16 * (2 * ch * d + 2 * d * d) + 9 * 2 * d,
                    activations: 3 * hw * (d / 4 + 2 * d / 16 + 1),
                };
                unet.add(patch)
            }
        }
    }

    /// Refuses a model that cannot be trained at batches of `batch` images, or evaluated at
    /// batches of `eval_batch`, in this machine's memory; the error names the keys that size it.
    pub fn check_fits(
        &self,
        input: InputShape,
        classes: usize,
        batch: usize,
        eval_batch: usize,
    ) -> Result<()> {
        let f = self.footprint(input, classes);
        for (what, size, key) in [
            ("train", batch, "train.batch_size"),
            ("evaluate", eval_batch, "train.eval_batch_size"),
        ] {
            device::check_fits(
                &format!(
                    "a {} model for images of {input}, to {what} at batch {size} ({} weights, \
                     {} activation values per image),",
                    self.kind(),
                    f.weights,
                    f.activations
                ),
                f.training_bytes(size),
            )
            .map_err(|e| anyhow!("{e}: make {} or {key} smaller", self.size_keys()))?;
        }
        Ok(())
    }

    /// The keys of `[model]` that size the model.
    fn size_keys(&self) -> &'static str {
        match self {
            ModelConfig::Cnn(_) => "model.blocks, model.hidden",
            ModelConfig::CnnLif(_) => "model.blocks, model.hidden, model.steps",
            ModelConfig::Rnn(_) => "model.hidden, model.layers",
            ModelConfig::CnnRnn(_) => "model.blocks, model.hidden, model.layers",
            ModelConfig::Svm(_) => "model.components",
            ModelConfig::KernelSvm(_) => "model.subset, model.max_kernel_mib",
            ModelConfig::Gan(_) => "model.g_channels, model.d_channels, model.latent, model.embed",
            ModelConfig::Ssgan(_) => "model.blocks, model.hidden, model.g_channels, model.latent",
            ModelConfig::Restore(_) => "model.channels, model.d_channels",
        }
    }
}

/// The DCGAN generator's footprint (`models::gan::generator`).
fn generator(input: InputShape, classes: u128, latent: usize, embed: usize, g: usize) -> Footprint {
    let (h, w) = (input.height as u128 / 4, input.width as u128 / 4);
    let (c, hw) = (input.channels as u128, h * w);
    let (gc, latent, embed) = (g as u128, latent as u128, embed as u128);
    Footprint {
        weights: classes * embed + (latent + embed) * 2 * gc * hw + 2 * gc * gc * 16 + gc * c * 16,
        activations: 3 * (2 * gc * hw + gc * 4 * hw + c * 16 * hw),
    }
}

fn pixels(s: InputShape) -> u128 {
    s.channels as u128 * s.height as u128 * s.width as u128
}

/// The conv blocks (convolution, batch norm, activation, pooling) and their output shape.
fn conv_stack(blocks: &[BlockConfig], input: InputShape) -> (Footprint, InputShape) {
    let mut s = input;
    let mut f = Footprint {
        weights: 0,
        activations: 0,
    };
    for b in blocks {
        let (cin, cout, k) = (s.channels as u128, b.channels as u128, b.kernel as u128);
        f.weights += cin * k * k * cout + 3 * cout;
        f.activations += 4 * cout * s.height as u128 * s.width as u128;
        s = InputShape {
            channels: b.channels,
            height: s.height / b.pool.max(1),
            width: s.width / b.pool.max(1),
        };
    }
    (f, s)
}

/// Fully connected layers from `input` features through `hidden` to `classes` outputs.
fn dense(input: u128, hidden: &[usize], classes: u128) -> Footprint {
    let mut widths = vec![input];
    widths.extend(hidden.iter().map(|&h| h as u128));
    widths.push(classes);
    Footprint {
        weights: widths.windows(2).map(|w| (w[0] + 1) * w[1]).sum(),
        activations: 2 * widths.iter().sum::<u128>(),
    }
}

/// A recurrent encoder over `steps` steps of `features` inputs.
fn sequence(spec: &SeqSpec, steps: u128, features: u128) -> Footprint {
    let gates: u128 = match spec.cell {
        Cell::Lstm => 4,
        Cell::Gru => 3,
    };
    let dirs: u128 = if spec.bidirectional { 2 } else { 1 };
    let hidden = spec.hidden as u128;
    let mut input = features;
    let mut f = Footprint {
        weights: 0,
        activations: 0,
    };
    for _ in 0..spec.layers {
        f.weights += dirs * gates * (input + hidden + 2) * hidden;
        f.activations += dirs * steps * (gates + 2) * hidden;
        input = dirs * hidden;
    }
    f
}

fn out_width(spec: &SeqSpec) -> u128 {
    spec.output_width() as u128
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const MNIST: InputShape = InputShape::MNIST;

    /// The estimate against the real parameter count, for every shipped kind: within a factor 2.
    #[test]
    fn the_estimates_are_near_the_real_parameter_counts() {
        for (file, real) in [
            ("config/cnn.toml", 421_930u128),
            ("config/rnn.toml", 123_914),
            ("config/cnn-rnn.toml", 613_546),
            ("config/cnn-lif.toml", 50_474),
            ("config/gan.toml", 943_298),
            ("config/restore-noise.toml", 151_218),
            ("config/svm-rff.toml", 12_720_010),
        ] {
            let config = crate::config::load(Some(std::path::Path::new(file)), &[]).unwrap();
            let f = config.model.footprint(MNIST, 10);
            assert!(
                f.weights * 2 >= real && f.weights <= real * 2,
                "{file}: estimated {} weights, has {real}",
                f.weights
            );
        }
    }

    #[test]
    fn a_model_beyond_memory_is_refused_naming_its_keys() {
        let mut config = Config::default();
        let ModelConfig::Cnn(c) = &mut config.model else {
            panic!("the default is a cnn")
        };
        c.hidden = vec![4_000_000_000];
        let err = format!(
            "{:#}",
            config.model.check_fits(MNIST, 10, 64, 256).unwrap_err()
        );
        assert!(
            err.contains("model.hidden") && err.contains("this machine has"),
            "{err}"
        );
        assert!(
            Config::default()
                .model
                .check_fits(MNIST, 10, 64, 256)
                .is_ok()
        );
    }
}
