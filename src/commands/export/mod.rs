//! `fovea export`: a trained run leaves fovea, as a safetensors file of its networks' weights
//! (named and laid out as PyTorch's, `safetensors.rs`) or as an ONNX model of a classifier's
//! whole inference path (`onnx.rs`), with what a user needs to feed it (classes, input shape,
//! normalization, the run's config) in the file's metadata.

mod onnx;
mod safetensors;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::commands::runs::Opened;

pub use onnx::onnx;
pub use safetensors::safetensors;

/// What `fovea export` wrote.
#[derive(Debug)]
pub struct Exported {
    pub path: PathBuf,
    pub checkpoint: PathBuf,
    /// What the file holds, in words ("42 tensors").
    pub contents: String,
    pub bytes: u64,
}

/// The metadata both formats carry (string to string, as both have it): what fovea wrote the
/// file from and what a user needs to feed the model.
fn metadata(run: &Opened) -> Result<HashMap<String, String>> {
    let meta = &run.meta;
    let shape = meta.shape;
    Ok(HashMap::from([
        ("producer".into(), format!("fovea {}", meta.fovea_version)),
        ("kind".into(), meta.model_kind.clone()),
        ("classes".into(), serde_json::to_string(&meta.classes)?),
        (
            "input_shape".into(),
            serde_json::to_string(&[shape.channels, shape.height, shape.width])?,
        ),
        (
            "input".into(),
            "pixels / 255, then (x - mean) / std per channel".into(),
        ),
        ("mean".into(), serde_json::to_string(&meta.normalizer.mean)?),
        ("std".into(), serde_json::to_string(&meta.normalizer.std)?),
        ("step".into(), meta.state.step.to_string()),
        ("config".into(), run.config.to_toml()),
    ]))
}
