//! `fovea export --format onnx`: a classifier's whole inference path as one ONNX model, from
//! raw pixels to class probabilities, traced through Burn's capture backend by Burn's own
//! exporter (`burn-onnx`, opset 18).

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::{Tensor, TensorData};
use burn_onnx::export::{AxisSpec, ExportError, InputSpec, OnnxExporter};
use onnx_ir::{Message, ModelProto};

use super::{Exported, metadata};
use crate::commands::runs::Opened;
use crate::data::batch::Normalizer;
use crate::device::BackendKind;
use crate::models::Model;
use crate::tasks::classify::load_model;

/// The model's input: float32 pixels `[batch, channels, height, width]` in [0, 255].
pub const INPUT: &str = "pixels";
/// The model's output: class probabilities `[batch, classes]`.
pub const OUTPUT: &str = "probabilities";

/// `fovea export RUN --format onnx --out FILE [--batch N]`: the `which` checkpoint's
/// classifier, with fovea's normalization before it and a softmax after it, for any batch size
/// (or for `fixed_batch` images). Kinds with an operation ONNX's exporter cannot translate are
/// refused, naming the operation. The file is written beside `out` and renamed over it only
/// when complete.
pub fn onnx(dir: &Path, which: &str, out: &Path, fixed_batch: Option<usize>) -> Result<Exported> {
    if fixed_batch == Some(0) {
        bail!("--batch must be at least 1");
    }
    let run = Opened::open(dir, which, Some(BackendKind::Flex))?;
    let (meta, device) = (&run.meta, &run.device);
    let kind = run.config.model.kind();
    if !run.config.model.is_classifier() {
        bail!(
            "ONNX export takes a classifier run; this run's model is `{kind}` (its weights export with --format safetensors)"
        );
    }
    let model = run
        .config
        .model
        .init(meta.shape, meta.classes.len(), device)?;
    let model = load_model(model, &run.parts)?;
    let shape = meta.shape;
    let batch =
        |n: usize| Tensor::<4>::zeros([n, shape.channels, shape.height, shape.width], device);
    let spec = InputSpec::new([
        AxisSpec::dynamic("batch"),
        AxisSpec::Static,
        AxisSpec::Static,
        AxisSpec::Static,
    ]);
    let normalizer = &meta.normalizer;
    let forward = |m: &Model, x: Tensor<4>| inference(m, x, normalizer);
    let exporter = OnnxExporter::new();
    let traced = match fixed_batch {
        Some(n) => exporter
            .export(&model, batch(n), forward)
            .map_err(|e| refusal(kind, e))?,
        None => match exporter.export_dynamic(&model, batch(2), batch(3), &[spec], forward) {
            Ok(t) => t,
            // Is the trouble the batch axis alone? A fixed batch tells.
            Err(
                e @ (ExportError::DynamicShapeLost { .. }
                | ExportError::DynamicGraphMismatch { .. }),
            ) => {
                return Err(match exporter.export(&model, batch(1), forward) {
                    Ok(_) => anyhow::anyhow!(
                        "a `{kind}` model exports to ONNX only for a fixed batch size: its forward pass depends on the batch size ({e}); export with --batch N"
                    ),
                    Err(fixed) => refusal(kind, fixed),
                });
            }
            Err(e) => return Err(refusal(kind, e)),
        },
    };
    let batch = fixed_batch.map_or("batch".to_string(), |n| n.to_string());
    let mut proto = ModelProto::parse_from_bytes(traced.as_bytes())
        .context("reading back the exported ONNX model")?;
    name_boundaries(&mut proto)?;
    proto.producer_name = "fovea".into();
    proto.producer_version = meta.fovea_version.clone();
    proto.doc_string = format!(
        "A fovea `{kind}` classifier: `{INPUT}`, float32 [{batch}, {}, {}, {}] in [0, 255], to \
         `{OUTPUT}`, float32 [{batch}, {}] in the order of the `classes` metadata.",
        shape.channels,
        shape.height,
        shape.width,
        meta.classes.len()
    );
    let mut props = metadata(&run)?;
    props.insert(
        "input".into(),
        format!("{INPUT}: float32 pixels in [0, 255]; the model divides by 255 and applies mean and std itself"),
    );
    let mut props: Vec<_> = props.into_iter().collect();
    props.sort();
    for (key, value) in props {
        proto.metadata_props.push(Default::default());
        let entry = proto.metadata_props.last_mut().expect("just pushed");
        entry.key = key;
        entry.value = value;
    }
    let nodes = proto.graph.node.len();
    let tensors = proto.graph.initializer.len();
    let bytes = proto.write_to_bytes().context("writing the ONNX model")?;
    crate::fsio::write_atomic(out, &bytes)?;
    Ok(Exported {
        path: out.to_path_buf(),
        checkpoint: run.checkpoint,
        contents: format!("{nodes} operations, {tensors} tensors"),
        bytes: bytes.len() as u64,
    })
}

/// What the exported model computes: pixels in [0, 255] → `/ 255` → `(x − mean) / std` per
/// channel → the classifier → softmax over the classes. The softmax subtracts each row's
/// maximum (found with `max_dim_with_indices`, which the exporter translates) before `exp`.
fn inference(model: &Model, pixels: Tensor<4>, normalizer: &Normalizer) -> Tensor<2> {
    let device = pixels.device();
    let per_channel = |values: &[f32]| -> Tensor<4> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [1, values.len(), 1, 1]),
            &device,
        )
    };
    let x =
        (pixels.div_scalar(255.0) - per_channel(&normalizer.mean)) / per_channel(&normalizer.std);
    softmax(model.forward(x))
}

fn softmax(logits: Tensor<2>) -> Tensor<2> {
    let (max, _) = logits.clone().max_dim_with_indices(1); // [b, 1]
    let e = (logits - max).exp();
    let sum = e.clone().sum_dim(1); // [b, 1]
    e / sum
}

/// Renames the graph's one input and one output to `INPUT` and `OUTPUT`, wherever a node
/// reads or writes them.
fn name_boundaries(proto: &mut ModelProto) -> Result<()> {
    let graph = proto.graph.mut_or_insert_default();
    let ([input], [output]) = (graph.input.as_mut_slice(), graph.output.as_mut_slice()) else {
        bail!(
            "the exported graph has {} inputs and {} outputs, not one of each",
            graph.input.len(),
            graph.output.len()
        );
    };
    let renames = [
        (std::mem::replace(&mut input.name, INPUT.into()), INPUT),
        (std::mem::replace(&mut output.name, OUTPUT.into()), OUTPUT),
    ];
    for node in &mut graph.node {
        for name in node.input.iter_mut().chain(node.output.iter_mut()) {
            if let Some((_, new)) = renames.iter().find(|(old, _)| old == name) {
                *name = (*new).into();
            }
        }
    }
    Ok(())
}

/// The exporter's error as a user's: an operation it cannot translate is named by its Burn
/// operation (`BaseFloat::SwapDims`), not by the operation's whole description.
fn refusal(kind: &str, e: ExportError) -> anyhow::Error {
    match e {
        ExportError::UnsupportedOperation { kind: op, .. } => anyhow::anyhow!(
            "a `{kind}` model does not export to ONNX: its forward pass uses the operation `{}`, which Burn's ONNX exporter (opset 18) does not translate; export its weights with --format safetensors",
            operation_name(&op)
        ),
        other => anyhow::anyhow!("exporting a `{kind}` model to ONNX: {other}"),
    }
}

/// `NumericFloat(F32, GreaterElem(BinaryOpIr { … }))` → `NumericFloat::GreaterElem`: the
/// variant names that open a parenthesis before the first brace (the last piece before the
/// brace is the operation's description, not a variant).
fn operation_name(debug: &str) -> String {
    let head = debug.split('{').next().unwrap_or(debug);
    let pieces: Vec<&str> = head.split('(').collect();
    let names: Vec<&str> = pieces[..pieces.len().saturating_sub(1)]
        .iter()
        .filter_map(|piece| piece.rsplit([' ', ',']).next())
        .filter(|word| word.chars().next().is_some_and(char::is_alphabetic))
        .collect();
    if names.is_empty() {
        head.trim().to_string()
    } else {
        names.join("::")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn operations_are_named_by_their_variants() {
        assert_eq!(
            operation_name(
                "NumericFloat(F32, GreaterElem(BinaryOpIr { lhs: TensorIr { id: 3 } }))"
            ),
            "NumericFloat::GreaterElem"
        );
        assert_eq!(
            operation_name("BaseFloat(SwapDims(SwapDimsOpIr { input: x, dim1: 0, dim2: 1 }))"),
            "BaseFloat::SwapDims"
        );
        assert_eq!(operation_name("Drop(TensorIr { id: 1 })"), "Drop");
        assert_eq!(
            operation_name("BaseFloat(Cast(CastOpIr { input: x }))"),
            "BaseFloat::Cast"
        );
    }

    #[test]
    fn softmax_rows_sum_to_one_even_for_large_logits() {
        let device = Device::flex();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![1000.0f32, 999.0, 0.0, 1.0, 2.0, 3.0], [2, 3]),
            &device,
        );
        let reference = burn::tensor::activation::softmax(logits.clone(), 1);
        let ours = softmax(logits);
        let diff = (ours - reference).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "{diff}");
    }
}
