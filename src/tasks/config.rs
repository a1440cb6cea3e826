//! What the tasks take from a run's config: the optimizers each task has (and their defaults),
//! the settings a task is built from, and `[eval]`: how a run that is not a classifier is
//! judged — the classifier whose eyes measure a GAN's images or a restorer's repairs (the
//! judge), the FID's sample, GAN-train, the panels.
//!
//! Each key applies to some kinds: a key given for a run of another kind is refused, and
//! `resolve` gives every key of the run's kind its value (the saved config states them).

use std::path::PathBuf;

use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use crate::data::config::AugmentConfig;
use crate::models::ModelConfig;
use crate::train::config::{OptimizerConfig, Optimizers};
use crate::train::{TrainConfig, optim};

/// The optimizers of the task `model` names, each with its default settings: a classifier has
/// one (Adam, lr 10⁻³), the GAN and the restorer a generator's and a discriminator's (Adam,
/// β₁ 0.5), the kernel SVM none (SMO fits it).
pub fn optimizers(model: &ModelConfig) -> Optimizers {
    let adam = |lr: f64| OptimizerConfig {
        lr,
        beta1: 0.5,
        ..Default::default()
    };
    match model {
        ModelConfig::Gan(_) => Optimizers::Named(vec![
            ("generator", adam(2e-4)),
            ("discriminator", adam(2e-4)),
        ]),
        ModelConfig::Ssgan(_) => Optimizers::Named(vec![
            ("generator", adam(1e-3)),
            ("discriminator", adam(1e-3)),
        ]),
        ModelConfig::Restore(_) => Optimizers::Named(vec![
            ("generator", adam(1e-3)),
            ("discriminator", adam(2e-4)),
        ]),
        ModelConfig::KernelSvm(_) => Optimizers::None,
        _ => Optimizers::One(OptimizerConfig::default()),
    }
}

/// What a task is built from: the resolved sections of a run's config.
pub struct Settings<'a> {
    pub model: &'a ModelConfig,
    pub train: &'a TrainConfig,
    pub eval: &'a EvalConfig,
    /// The training images' augmentation (`data.augment`), for a task that draws its own
    /// batches.
    pub augment: &'a AugmentConfig,
    pub seed: u64,
}

impl Settings<'_> {
    /// The generator's and the discriminator's optimizers, each with its base learning rate.
    pub fn adversarial_pair(&self) -> [(ModuleOptimizer, f64); 2] {
        ["generator", "discriminator"].map(|name| {
            let o = self.train.named_optimizer(name);
            (optim::build(&o), o.lr)
        })
    }
}

/// `[eval]` of a config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// gan, restore: the classifier run (a `cnn` run for the FID) whose features and predictions
    /// measure the images; none: fovea trains the reference CNN on the same data
    /// (`judge_epochs` epochs) once and keeps it in the user cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<PathBuf>,
    /// gan, restore: epochs of the automatic judge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge_epochs: Option<usize>,
    /// gan: generated images per FID (the judge's accuracy on them is GAN-test).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fid_samples: Option<usize>,
    /// gan: GAN-train, measured when training ends: the reference CNN trained for this many
    /// epochs on generated images alone (`gan_train_ratio` per real training image, from
    /// best.ckpt), tested on the real test set. 0 = not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gan_train_epochs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gan_train_ratio: Option<f64>,
    /// restore: test images in the side-by-side panels (the first of each class in turn).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panel_images: Option<usize>,
}

/// The keys' defaults (`resolve` says which kinds each applies to).
const JUDGE_EPOCHS: usize = 5;
const FID_SAMPLES: usize = 10_000;
const GAN_TRAIN_EPOCHS: usize = 5;
const GAN_TRAIN_RATIO: f64 = 1.0;
const PANEL_IMAGES: usize = 10;

impl EvalConfig {
    pub fn judge_epochs(&self) -> usize {
        self.judge_epochs.unwrap_or(JUDGE_EPOCHS)
    }

    pub fn fid_samples(&self) -> usize {
        self.fid_samples.unwrap_or(FID_SAMPLES)
    }

    pub fn gan_train_epochs(&self) -> usize {
        self.gan_train_epochs.unwrap_or(GAN_TRAIN_EPOCHS)
    }

    pub fn gan_train_ratio(&self) -> f64 {
        self.gan_train_ratio.unwrap_or(GAN_TRAIN_RATIO)
    }

    pub fn panel_images(&self) -> usize {
        self.panel_images.unwrap_or(PANEL_IMAGES)
    }

    /// Checks each key given against the run's `kind` and its range, then gives every key of
    /// that kind its value; the error starts with the key inside `[eval]`.
    pub fn resolve(&mut self, kind: &str) -> Result<(), String> {
        let given = [
            ("judge", self.judge.is_some(), &["gan", "restore"][..]),
            (
                "judge_epochs",
                self.judge_epochs.is_some(),
                &["gan", "restore"],
            ),
            ("fid_samples", self.fid_samples.is_some(), &["gan"]),
            (
                "gan_train_epochs",
                self.gan_train_epochs.is_some(),
                &["gan"],
            ),
            ("gan_train_ratio", self.gan_train_ratio.is_some(), &["gan"]),
            ("panel_images", self.panel_images.is_some(), &["restore"]),
        ];
        for (key, set, kinds) in given {
            if set && !kinds.contains(&kind) {
                return Err(format!(
                    "{key} applies to {} runs; this is a {kind} run",
                    kinds.join(" and ")
                ));
            }
        }
        if self.judge_epochs() == 0 {
            return Err("judge_epochs must be at least 1".into());
        }
        if self.fid_samples() < 2 {
            return Err(format!(
                "fid_samples must be at least 2 (got {})",
                self.fid_samples()
            ));
        }
        let ratio = self.gan_train_ratio();
        if !(ratio > 0.0 && ratio <= 100.0) {
            return Err(format!("gan_train_ratio must be in (0, 100] (got {ratio})"));
        }
        if self.panel_images() == 0 {
            return Err("panel_images must be at least 1".into());
        }
        if kind == "gan" || kind == "restore" {
            self.judge_epochs = Some(self.judge_epochs());
        }
        if kind == "gan" {
            self.fid_samples = Some(self.fid_samples());
            self.gan_train_epochs = Some(self.gan_train_epochs());
            self.gan_train_ratio = Some(self.gan_train_ratio());
        }
        if kind == "restore" {
            self.panel_images = Some(self.panel_images());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_gets_its_keys_and_refuses_the_others() {
        let mut e = EvalConfig::default();
        e.resolve("gan").unwrap();
        assert_eq!(e.fid_samples, Some(10_000));
        assert_eq!(e.panel_images, None);
        let again = e.clone();
        e.resolve("gan").unwrap();
        assert_eq!(e, again);
        let mut cnn = EvalConfig::default();
        cnn.resolve("cnn").unwrap();
        assert_eq!(
            cnn,
            EvalConfig::default(),
            "a classifier has no [eval] keys"
        );
        let mut wrong = EvalConfig {
            fid_samples: Some(100),
            ..Default::default()
        };
        assert_eq!(
            wrong.resolve("restore").unwrap_err(),
            "fid_samples applies to gan runs; this is a restore run"
        );
        let mut bad = EvalConfig {
            judge_epochs: Some(0),
            ..Default::default()
        };
        assert!(bad.resolve("gan").unwrap_err().starts_with("judge_epochs"));
    }
}
