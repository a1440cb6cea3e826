//! `fovea export --format safetensors`: a run's networks as a safetensors file, a classifier's
//! tensors named and laid out as PyTorch's modules name and lay out theirs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, burn_pack};
use safetensors::tensor::{Dtype, TensorView};

use super::{Exported, metadata};
use crate::commands::runs::Opened;
use crate::device::BackendKind;
use crate::models::ModelConfig;
use crate::models::cnn::BlockConfig;
use crate::tasks::classify::load_model;
use crate::tasks::gan::EMA_PART;
use crate::tasks::records::load_module;

/// One tensor of the file: its name, element type, shape and little-endian bytes.
struct Named {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// `fovea export RUN --format safetensors --out FILE`: the `which` checkpoint's networks: a
/// classifier's, named as PyTorch's modules (`tensors`); a `gan`'s generator (and its
/// moving average) and discriminator, a `restore` run's U-Net and patch discriminator, by their
/// module paths under `generator.`, `generator_ema.`, `discriminator.`. The file is written
/// beside `out` and renamed over it only when complete.
pub fn safetensors(dir: &Path, which: &str, out: &Path) -> Result<Exported> {
    let run = Opened::open(dir, which, Some(BackendKind::Flex))?;
    let (meta, device) = (&run.meta, &run.device);
    let steps = meta.state.step as i64;
    let tensors = match &run.config.model {
        ModelConfig::Gan(gan) => {
            let (g, d) = gan.init(meta.shape, meta.classes.len(), device)?;
            let mut t = tensors(
                &Layout::Own("generator."),
                &load_module(g.clone(), &run.parts, "generator")?,
                steps,
            )?;
            if run.parts.iter().any(|(name, _)| name == EMA_PART) {
                t.extend(tensors(
                    &Layout::Own("generator_ema."),
                    &load_module(g, &run.parts, EMA_PART)?,
                    steps,
                )?);
            }
            t.extend(tensors(
                &Layout::Own("discriminator."),
                &load_module(d, &run.parts, "discriminator")?,
                steps,
            )?);
            t
        }
        ModelConfig::Restore(r) => {
            let (g, d) = r.init(meta.shape, device)?;
            let mut t = tensors(
                &Layout::Own("generator."),
                &load_module(g, &run.parts, "generator")?,
                steps,
            )?;
            t.extend(tensors(
                &Layout::Own("discriminator."),
                &load_module(d, &run.parts, "discriminator")?,
                steps,
            )?);
            t
        }
        m => {
            let model = m.init(meta.shape, meta.classes.len(), device)?;
            tensors(&Layout::of(m), &load_model(model, &run.parts)?, steps)?
        }
    };
    let mut metadata = metadata(&run)?;
    metadata.insert("format".into(), "pt".into());
    let views = tensors
        .iter()
        .map(|t| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.clone(), v))
                .with_context(|| format!("tensor {}", t.name))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata))
        .context("serializing the safetensors file")?;
    crate::fsio::write_atomic(out, &bytes)?;
    Ok(Exported {
        path: out.to_path_buf(),
        checkpoint: run.checkpoint,
        contents: format!("{} tensors", tensors.len()),
        bytes: bytes.len() as u64,
    })
}

/// Beside a batch norm's `running_var`, PyTorch's `num_batches_tracked`: how many batches its
/// statistics have seen (the checkpoint's step).
fn batches_tracked(name: &str, steps: i64) -> Option<Named> {
    name.ends_with(".running_var").then(|| Named {
        name: name.replace(".running_var", ".num_batches_tracked"),
        dtype: Dtype::I64,
        shape: vec![],
        bytes: steps.to_le_bytes().to_vec(),
    })
}

/// A network's tensors as PyTorch names and lays them out: linear weights `[out, in]`,
/// batch norm's `weight`, `bias`, `running_mean`, `running_var` and `num_batches_tracked`,
/// and a recurrent layer's gates stacked into `weight_ih_l{n}`, `weight_hh_l{n}`,
/// `bias_ih_l{n}`, `bias_hh_l{n}` (`_reverse` for the backward direction) in PyTorch's order:
/// reset, update, new for a GRU; input, forget, cell, output for an LSTM. Named as the modules
/// of `bench/pytorch_reference.py`: a `cnn` (and an `ssgan`'s classifier) as its `Cnn`, with
/// `features.N` an `nn.Sequential` of conv, batch norm, ReLU, max-pool and dropout for each
/// block, then `hidden` and `out`; an `rnn` as its `Rnn` (`gru` or `lstm`, `out`; a column
/// scan's layers as `columns_gru` or `columns_lstm`); a `cnn-rnn` as its `CnnRnn` (`conv.N`,
/// the recurrent layers, `out`). Other networks (a `cnn-lif`, an `svm`, a GAN's) keep fovea's
/// module paths, under a prefix where a file holds several (`Layout::Own`).
fn tensors(layout: &Layout, module: &impl ModuleSnapshot, steps: i64) -> Result<Vec<Named>> {
    let collected = module.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true);
    let mut out = Vec::with_capacity(collected.len());
    let mut gates: BTreeMap<String, Vec<(usize, Named)>> = BTreeMap::new();
    for t in collected {
        let (path, dtype, shape, _, bytes) = t
            .into_parts()
            .map_err(|e| anyhow::anyhow!("reading a weight of the model: {e:?}"))?;
        let unexpected = || anyhow::anyhow!("a weight at an unexpected path `{path}`");
        let named = |name: String| -> Result<Named> {
            Ok(Named {
                name,
                dtype: dtype_of(dtype)?,
                shape: shape.to_vec(),
                bytes: bytes.to_vec(),
            })
        };
        match layout.name(&path).ok_or_else(unexpected)? {
            Renamed::Gate { name, at } => gates
                .entry(name.clone())
                .or_default()
                .push((at, named(name)?)),
            Renamed::Whole(name) => {
                out.extend(batches_tracked(&name, steps));
                out.push(named(name)?);
            }
        }
    }
    for (name, mut parts) in gates {
        parts.sort_by_key(|(at, _)| *at);
        let gates = if name.contains("gru.") {
            GRU_GATES.len()
        } else {
            LSTM_GATES.len()
        };
        if parts.len() != gates {
            bail!("{name}: {} gates of the {gates} a cell has", parts.len());
        }
        let mut shape = parts[0].1.shape.clone();
        shape[0] *= parts.len();
        let bytes = parts
            .iter()
            .flat_map(|(_, p)| p.bytes.iter().copied())
            .collect();
        out.push(Named {
            name,
            dtype: parts[0].1.dtype,
            shape,
            bytes,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Where a fovea weight goes in PyTorch's naming.
enum Renamed {
    Whole(String),
    /// One gate's part of a stacked recurrent tensor, and the gate's place in the stack.
    Gate {
        name: String,
        at: usize,
    },
}

/// How a kind's module paths map onto the reference module's names.
enum Layout<'a> {
    /// `cnn`, `ssgan`: its blocks and how many hidden layers it has.
    Cnn(&'a [BlockConfig], usize),
    Rnn,
    /// `cnn-rnn`: its blocks.
    CnnRnn(&'a [BlockConfig]),
    /// fovea's own paths, after a prefix (`generator.`, or none).
    Own(&'a str),
}

const GRU_GATES: [&str; 3] = ["reset_gate", "update_gate", "new_gate"];
const LSTM_GATES: [&str; 4] = ["input_gate", "forget_gate", "cell_gate", "output_gate"];

impl<'a> Layout<'a> {
    fn of(model: &'a ModelConfig) -> Self {
        match model {
            ModelConfig::Cnn(c) => Layout::Cnn(&c.blocks, c.hidden.len()),
            ModelConfig::Ssgan(c) => Layout::Cnn(&c.blocks, c.hidden.len()),
            ModelConfig::Rnn(_) => Layout::Rnn,
            ModelConfig::CnnRnn(c) => Layout::CnnRnn(&c.blocks),
            _ => Layout::Own(""),
        }
    }

    fn name(&self, path: &str) -> Option<Renamed> {
        let parts: Vec<&str> = path.split('.').collect();
        let whole = |s: String| Some(Renamed::Whole(s));
        match (self, parts.as_slice()) {
            (Layout::Own(prefix), _) => whole(format!("{prefix}{path}")),
            (Layout::Cnn(blocks, _), ["blocks", "blocks", rest @ ..])
            | (Layout::CnnRnn(blocks), ["convs", "blocks", rest @ ..]) => {
                let prefix = if matches!(self, Layout::Cnn(..)) {
                    "features"
                } else {
                    "conv"
                };
                whole(format!("{prefix}.{}", block_name(rest, blocks)?))
            }
            (Layout::Cnn(_, 1), ["hidden", "0", param]) => whole(format!("hidden.{param}")),
            (Layout::Cnn(..), ["hidden", j, param]) => whole(format!("hidden.{j}.{param}")),
            (Layout::Rnn, ["rows", rest @ ..]) => gate_name("", rest),
            (Layout::Rnn, ["columns", rest @ ..]) => gate_name("columns_", rest),
            (Layout::CnnRnn(_), ["encoder", rest @ ..]) => gate_name("", rest),
            (_, ["output", param]) => whole(format!("out.{param}")),
            _ => None,
        }
    }
}

/// `[i, layer, param]` of a conv block → `N.param` in the blocks' `nn.Sequential`, where each
/// block is conv, batch norm, ReLU, max-pool and dropout, each where the block has it.
fn block_name(rest: &[&str], blocks: &[BlockConfig]) -> Option<String> {
    let [i, layer, param] = rest else { return None };
    let i: usize = i.parse().ok()?;
    let block = blocks.get(i)?;
    let first: usize = blocks[..i]
        .iter()
        .map(|b| 2 + b.batch_norm as usize + (b.pool > 1) as usize + (b.dropout > 0.0) as usize)
        .sum();
    let at = match *layer {
        "conv" => first,
        "norm" if block.batch_norm => first + 1,
        _ => return None,
    };
    Some(format!("{at}.{param}"))
}

/// `[layers, n, (forward | reverse), gate, (input | hidden)_transform, param]` of a recurrent
/// encoder → its part of PyTorch's stacked `{cell}.{param}_{ih | hh}_l{n}[_reverse]`.
fn gate_name(prefix: &str, rest: &[&str]) -> Option<Renamed> {
    let (n, direction, gate, transform, param) = match rest {
        ["layers", n, d @ ("forward" | "reverse"), g, t, p] => (n, *d, g, t, p),
        ["layers", n, g, t, p] => (n, "forward", g, t, p),
        _ => return None,
    };
    let (cell, at) = match GRU_GATES.iter().position(|g| g == gate) {
        Some(at) => ("gru", at),
        None => ("lstm", LSTM_GATES.iter().position(|g| g == gate)?),
    };
    let side = match *transform {
        "input_transform" => "ih",
        "hidden_transform" => "hh",
        _ => return None,
    };
    let reverse = if direction == "reverse" {
        "_reverse"
    } else {
        ""
    };
    Some(Renamed::Gate {
        name: format!("{prefix}{cell}.{param}_{side}_l{n}{reverse}"),
        at,
    })
}

fn dtype_of(d: burn_pack::DType) -> Result<Dtype> {
    Ok(match d {
        burn_pack::DType::F32 => Dtype::F32,
        burn_pack::DType::F64 => Dtype::F64,
        burn_pack::DType::F16 => Dtype::F16,
        burn_pack::DType::BF16 => Dtype::BF16,
        burn_pack::DType::I64 => Dtype::I64,
        burn_pack::DType::I32 => Dtype::I32,
        other => bail!("a weight of type {other:?} has no safetensors type"),
    })
}
