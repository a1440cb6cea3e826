//! The tasks fovea trains, each one `Task` for the shared loop, chosen by `[model] kind`:
//! `cnn`, `rnn`, `cnn-rnn`, `cnn-lif` and `svm` are classifiers; `gan` is the conditional GAN;
//! `ssgan` the semi-supervised GAN, whose discriminator is a classifier; `restore` repairs
//! damaged images.

pub mod classify;
pub mod config;
pub mod fid;
pub mod gan;
pub mod judge;
pub mod kernel_svm;
pub mod records;
pub mod restore;
pub mod ssgan;

use anyhow::{Context, Result};
use burn::tensor::Device;

use crate::data::Splits;
use crate::data::batch::Normalizer;
use crate::models::ModelConfig;
use crate::train::{Task, optim};
pub use config::{EvalConfig, Settings, optimizers};

/// Builds the task the settings name, with fresh weights seeded by the seed, training on
/// `device` (made an autodiff device here) for `data` normalized by `normalizer`. A GAN and a
/// restorer need their judge.
pub fn build(
    s: &Settings,
    data: &Splits,
    normalizer: &Normalizer,
    judge: Option<judge::Judge>,
    device: &Device,
) -> Result<Box<dyn Task>> {
    let ad = device.clone().autodiff();
    ad.seed(s.seed);
    if let ModelConfig::Gan(g) = s.model {
        let judge = judge.context("a gan task needs a judge classifier")?;
        return Ok(Box::new(gan::GanTask::new(
            s, g, data, normalizer, judge, ad,
        )?));
    }
    if let ModelConfig::Restore(r) = s.model {
        let judge = judge.context("a restore task needs a judge classifier")?;
        return Ok(Box::new(restore::RestoreTask::new(
            s, r, data, normalizer, judge, ad,
        )?));
    }
    if let ModelConfig::Ssgan(c) = s.model {
        return Ok(Box::new(ssgan::SsganTask::new(s, c, data, normalizer, ad)?));
    }
    let shape = data.train.shape;
    let net = match s.model.init(shape, data.source.classes.len(), &ad)? {
        // n of the SVM's regularisation term ‖W‖² / (2 · C · n)
        crate::models::Model::Svm(m) => {
            crate::models::Model::Svm(m.with_train_images(data.train.len()))
        }
        net => net,
    };
    let o = s.train.the_optimizer();
    Ok(Box::new(classify::Classifier::new(
        net,
        optim::build(&o),
        o.lr,
        ad,
        shape,
        data.source.classes.clone(),
        s.seed,
    )))
}
