//! `fovea export`: a run's classifier in a file other tools read: safetensors, its tensors named
//! and laid out as PyTorch's modules have theirs; ONNX, its whole inference path, which ONNX
//! Runtime runs to the same answers as `fovea predict`. What is wrong named, and a file already
//! there kept when an export fails.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::store::{ModuleSnapshot, burn_pack};
use common::{on_sample, run, text, train};
use onnx_ir::Message;
use safetensors::SafeTensors;

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// fovea's own weights of a run's checkpoint, by module path, with their shapes.
fn fovea_weights(run_dir: &Path, which: &str) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let loaded = fovea::commands::runs::load_run(run_dir, which, None).unwrap();
    ModuleSnapshot::collect(&loaded.model, None, None, true)
        .into_iter()
        .map(|t| {
            let (name, dtype, shape, _, bytes) = t.into_parts().unwrap();
            assert_eq!(dtype, burn_pack::DType::F32, "{name}");
            (name, (shape.to_vec(), floats(&bytes)))
        })
        .collect()
}

fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| v[r * cols + c]))
        .collect()
}

/// A small cnn trained on the sample, in `d/artifacts/c`.
fn trained_cnn(d: &Path) {
    let setup = on_sample(
        "cnn.toml",
        &[
            "train.epochs=1",
            "data.train_limit=200",
            // a block with dropout: the next block's layers sit one further in the Sequential
            "model.blocks=[{ channels = 4, dropout = 0.1 }, { channels = 8 }]",
            "model.hidden=[8]",
        ],
    );
    let out = train(d, "c", &setup);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_cnn_leaves_as_safetensors_named_and_laid_out_as_pytorch_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained_cnn(d);
    let out = run(
        d,
        &[
            "export",
            "artifacts/c",
            "--format",
            "safetensors",
            "--out",
            "c.safetensors",
            "--checkpoint",
            "last",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("16 tensors"), "{}", text(&out));

    let bytes = std::fs::read(d.join("c.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().map(String::from).collect();
    names.sort();
    let bn = [
        "bias",
        "num_batches_tracked",
        "running_mean",
        "running_var",
        "weight",
    ];
    let mut want = vec!["features.0.weight".to_string(), "features.5.weight".into()];
    for layer in [1, 6] {
        want.extend(bn.iter().map(|p| format!("features.{layer}.{p}")));
    }
    want.extend(["hidden.bias", "hidden.weight", "out.bias", "out.weight"].map(String::from));
    want.sort();
    assert_eq!(names, want);

    let ours = fovea_weights(&d.join("artifacts/c"), "last");
    let get = |name: &str| {
        let t = file.tensor(name).unwrap();
        (t.shape().to_vec(), floats(t.data()))
    };
    // convolutions and batch norm as they are; linear weights [out, in] where fovea's are [in, out]
    assert_eq!(
        get("features.5.weight"),
        ours["blocks.blocks.1.conv.weight"]
    );
    assert_eq!(get("features.6.weight"), ours["blocks.blocks.1.norm.gamma"]);
    assert_eq!(
        get("features.1.running_var"),
        ours["blocks.blocks.0.norm.running_var"]
    );
    let (shape, w) = &ours["output.weight"];
    assert_eq!(shape, &[8, 10]);
    assert_eq!(get("out.weight"), (vec![10, 8], transpose(w, 8, 10)));
    assert_eq!(get("hidden.bias"), ours["hidden.0.bias"]);
    let steps = file.tensor("features.1.num_batches_tracked").unwrap();
    assert_eq!(steps.dtype(), safetensors::Dtype::I64);
    let steps = i64::from_le_bytes(steps.data().try_into().unwrap());

    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(steps.to_string(), meta["step"]);
    assert!(steps > 0, "{steps}");
    assert_eq!(meta["kind"], "cnn");
    assert_eq!(meta["input_shape"], "[1,28,28]");
    let classes: Vec<String> = serde_json::from_str(&meta["classes"]).unwrap();
    assert_eq!(classes.len(), 10);
    assert!(meta["config"].contains("kind = \"cnn\""), "{meta:?}");
    let mean: Vec<f32> = serde_json::from_str(&meta["mean"]).unwrap();
    assert!(mean[0] > 0.0 && mean[0] < 1.0, "{mean:?}");

    // The safetensors package (Python) reads the same names, shapes and values.
    let Some(python) = python() else {
        return;
    };
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(READ_BACK)
        .arg(d.join("c.safetensors"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let read: BTreeMap<String, (Vec<usize>, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read.keys().cloned().collect::<Vec<_>>(), want);
    for name in &want {
        let t = file.tensor(name).unwrap();
        let sum = match t.dtype() {
            safetensors::Dtype::I64 => i64::from_le_bytes(t.data().try_into().unwrap()) as f64,
            _ => floats(t.data()).iter().map(|&v| v as f64).sum(),
        };
        let (shape, python_sum) = &read[name];
        assert_eq!(shape, t.shape(), "{name}");
        assert!(
            (python_sum - sum).abs() <= 1e-9 * sum.abs().max(1.0),
            "{name}: {python_sum} vs {sum}"
        );
    }
}

/// Each tensor's shape and the sum of its values, as Python's safetensors reads the file.
const READ_BACK: &str = r#"
import json, sys
from safetensors.numpy import load_file
print(json.dumps({k: [list(v.shape), float(v.astype("float64").sum())] for k, v in load_file(sys.argv[1]).items()}))
"#;

/// The Python named by `FOVEA_PYTHON`, which has safetensors, onnxruntime and numpy (CI's venv). Without
/// it the check is skipped, saying so; with `FOVEA_REQUIRE_PYTHON` set (CI sets it), its absence
/// is a failure.
fn python() -> Option<String> {
    match std::env::var("FOVEA_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var_os("FOVEA_REQUIRE_PYTHON").is_some() => {
            panic!("FOVEA_REQUIRE_PYTHON is set but FOVEA_PYTHON is not")
        }
        Err(_) => {
            eprintln!(
                "skipped: reading the file with Python (set FOVEA_PYTHON to a Python with safetensors, onnxruntime and numpy)"
            );
            None
        }
    }
}

#[test]
fn recurrent_gates_stack_in_pytorch_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = on_sample(
        "rnn.toml",
        &["train.epochs=1", "data.train_limit=64", "model.hidden=8"],
    );
    let out = train(d, "r", &setup);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(
        d,
        &[
            "export",
            "artifacts/r",
            "--format",
            "safetensors",
            "--out",
            "r.st",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(d.join("r.st")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let ours = fovea_weights(&d.join("artifacts/r"), "best");
    // a GRU's input weights: reset, update, new, each [hidden, input], stacked
    let t = file.tensor("gru.weight_ih_l0_reverse").unwrap();
    assert_eq!(t.shape(), [24, 28]);
    let stacked = floats(t.data());
    for (i, gate) in ["reset_gate", "update_gate", "new_gate"].iter().enumerate() {
        let (shape, w) = &ours[&format!("rows.layers.0.reverse.{gate}.input_transform.weight")];
        assert_eq!(shape, &[28, 8]);
        assert_eq!(&stacked[i * 8 * 28..(i + 1) * 8 * 28], transpose(w, 28, 8));
    }
    let t = file.tensor("gru.bias_hh_l0").unwrap();
    let (_, b) = &ours["rows.layers.0.forward.update_gate.hidden_transform.bias"];
    assert_eq!(&floats(t.data())[8..16], &b[..]);

    // ONNX: the recurrent cell's operations have no translation; the refusal names one, and
    // no file is left behind.
    let out = run(
        d,
        &[
            "export",
            "artifacts/r",
            "--format",
            "onnx",
            "--out",
            "r.onnx",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("a `rnn` model does not export to ONNX")
            && text(&out).contains("the operation `"),
        "{}",
        text(&out)
    );
    assert!(!d.join("r.onnx").exists());
}

#[test]
fn a_failed_export_names_the_problem_and_keeps_the_file_there() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("kept.st"), b"earlier").unwrap();
    let out = run(
        d,
        &[
            "export",
            "nowhere",
            "--format",
            "safetensors",
            "--out",
            "kept.st",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nowhere"), "{}", text(&out));
    assert_eq!(std::fs::read(d.join("kept.st")).unwrap(), b"earlier");
    // an unknown format is refused by name
    let out = run(
        d,
        &[
            "export", "nowhere", "--format", "pickle", "--out", "kept.st",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("pickle"), "{}", text(&out));
}

#[test]
fn a_cnn_exports_to_onnx_that_onnx_runtime_runs_to_predicts_answers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained_cnn(d);
    let out = run(
        d,
        &[
            "export",
            "artifacts/c",
            "--format",
            "onnx",
            "--out",
            "c.onnx",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("operations"), "{}", text(&out));

    // The graph's boundaries and metadata, as an ONNX reader sees them.
    let bytes = std::fs::read(d.join("c.onnx")).unwrap();
    let model = onnx_ir::ModelProto::parse_from_bytes(&bytes).unwrap();
    let meta: BTreeMap<&str, &str> = model
        .metadata_props
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(meta["kind"], "cnn");
    assert_eq!(meta["input_shape"], "[1,28,28]");
    let classes: Vec<String> = serde_json::from_str(meta["classes"]).unwrap();
    assert_eq!(classes.len(), 10);
    assert_eq!(model.producer_name, "fovea");
    assert_eq!(model.opset_import[0].version, 18);
    let graph = model.graph.as_ref().unwrap();
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name, "pixels");
    assert_eq!(graph.output[0].name, "probabilities");
    // the batch axis is named, not fixed
    let dims = |v: &onnx_ir::ValueInfoProto| -> Vec<String> {
        v.type_
            .tensor_type()
            .shape
            .dim
            .iter()
            .map(|d| {
                if d.has_dim_param() {
                    d.dim_param().to_string()
                } else {
                    d.dim_value().to_string()
                }
            })
            .collect()
    };
    assert_eq!(dims(&graph.input[0]), ["batch", "1", "28", "28"]);
    assert_eq!(dims(&graph.output[0]), ["batch", "10"]);
    // or for a fixed batch size
    let out = run(
        d,
        &[
            "export",
            "artifacts/c",
            "--format",
            "onnx",
            "--out",
            "c4.onnx",
            "--batch",
            "4",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let fixed =
        onnx_ir::ModelProto::parse_from_bytes(&std::fs::read(d.join("c4.onnx")).unwrap()).unwrap();
    let graph4 = fixed.graph.as_ref().unwrap();
    assert_eq!(dims(&graph4.input[0]), ["4", "1", "28", "28"]);
    assert_eq!(dims(&graph4.output[0]), ["4", "10"]);

    // ONNX Runtime on 1,000 Fashion-MNIST test images (the sample's), against `fovea predict`.
    let Some(python) = python() else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/onnx_check.py");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let out = std::process::Command::new(python)
        .current_dir(d)
        .arg(script)
        .args(["artifacts/c", "c.onnx", "--images", "1000"])
        .arg("--data-dir")
        .arg(sample)
        .arg("--fovea")
        .arg(env!("CARGO_BIN_EXE_fovea"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["images"], 1000, "{report}");
    assert_eq!(report["top1_agree"], 1000, "{report}");
    assert!(
        report["max_probability_difference"].as_f64().unwrap() <= 1e-4,
        "{report}"
    );
}
