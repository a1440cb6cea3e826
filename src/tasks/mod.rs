//! The tasks fovea trains, each one `Task` for the shared loop, chosen by `[model] kind`:
//! `cnn`, `rnn`, `cnn-rnn` and `cnn-lif` are classifiers.

pub mod classify;

use anyhow::Result;
use burn::tensor::Device;

use crate::data::InputShape;
use crate::models::ModelConfig;
use crate::train::{Task, TrainConfig, optim};

/// Builds the task `model` names, with fresh weights seeded by `seed`, training on `device`
/// (made an autodiff device here) for images of `shape` in `classes`.
pub fn build(
    model: &ModelConfig,
    train: &TrainConfig,
    seed: u64,
    shape: InputShape,
    classes: &[String],
    device: &Device,
) -> Result<Box<dyn Task>> {
    let ad = device.clone().autodiff();
    ad.seed(seed);
    // Every kind so far is a classifier; the kinds of other tasks add their arms here.
    let net = model.init(shape, classes.len(), &ad)?;
    Ok(Box::new(classify::Classifier::new(
        net,
        optim::build(train),
        train.lr,
        ad,
        shape,
        classes.to_vec(),
        seed,
    )))
}
