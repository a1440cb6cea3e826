//! The tasks fovea trains, each one `Task` for the shared loop, chosen by `[model] kind`:
//! `cnn`, `rnn`, `cnn-rnn`, `cnn-lif` and `svm` are classifiers; `gan` is the conditional GAN;
//! `restore` repairs damaged images.

pub mod classify;
pub mod fid;
pub mod gan;
pub mod judge;
pub mod kernel_svm;
pub mod records;
pub mod restore;

use anyhow::{Context, Result};
use burn::tensor::Device;

use crate::data::Splits;
use crate::data::batch::Normalizer;
use crate::models::ModelConfig;
use crate::train::{Task, TrainConfig, optim};

/// Builds the task `model` names, with fresh weights seeded by `seed`, training on `device`
/// (made an autodiff device here) for `data` normalized by `normalizer`. A GAN needs its judge.
pub fn build(
    model: &ModelConfig,
    train: &TrainConfig,
    seed: u64,
    data: &Splits,
    normalizer: &Normalizer,
    judge: Option<judge::Judge>,
    device: &Device,
) -> Result<Box<dyn Task>> {
    let ad = device.clone().autodiff();
    ad.seed(seed);
    if let ModelConfig::Gan(g) = model {
        let judge = judge.context("a gan task needs a judge classifier")?;
        return Ok(Box::new(gan::GanTask::new(
            g,
            seed,
            data,
            normalizer,
            judge,
            train.eval_batch_size,
            ad,
        )?));
    }
    if let ModelConfig::Restore(r) = model {
        let judge = judge.context("a restore task needs a judge classifier")?;
        return Ok(Box::new(restore::RestoreTask::new(
            r,
            seed,
            data,
            normalizer,
            judge,
            train.eval_batch_size,
            ad,
        )?));
    }
    let shape = data.train.shape;
    let net = match model.init(shape, data.source.classes.len(), &ad)? {
        // n of the SVM's regularisation term ‖W‖² / (2 · C · n)
        crate::models::Model::Svm(m) => {
            crate::models::Model::Svm(m.with_train_images(data.train.len()))
        }
        net => net,
    };
    Ok(Box::new(classify::Classifier::new(
        net,
        optim::build(train),
        train.lr,
        ad,
        shape,
        data.source.classes.clone(),
        seed,
    )))
}
