//! `[data]`: which images to train and test on, and how to augment them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::set::MAX_SIDE;
use super::sources::check_dataset_name;

/// `[data]` of a config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `fashion-mnist`, `mnist`, `kmnist`, `cifar10`, `folder` (needs `path`) or `sample`.
    pub dataset: String,
    /// Explicit location of the dataset's files; empty: resolve by name (see `fovea data info`).
    pub path: Option<PathBuf>,
    /// Fraction of the training set held out for validation (0 ≤ f < 1), chosen by the seed.
    pub val_fraction: f64,
    /// Use at most this many training images (after the validation split); 0 = all.
    pub train_limit: usize,
    /// Use at most this many test images; 0 = all.
    pub test_limit: usize,
    /// Keep the labels of this many training images per class (chosen by the seed, after
    /// `train_limit`), as when labels are scarce; the others are unlabelled, and the supervised
    /// kinds leave them out. 0 = every image keeps its label.
    pub labels_per_class: usize,
    /// For `folder` datasets: fraction of the images held out as the test set.
    pub test_fraction: f64,
    /// For `folder` datasets: resize every image to this size (height = width); 0 = keep the first image's size.
    pub image_size: usize,
    pub augment: AugmentConfig,
    pub synthetic: SyntheticConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: "sample".into(),
            path: None,
            val_fraction: 0.1,
            train_limit: 0,
            test_limit: 0,
            labels_per_class: 0,
            test_fraction: 0.2,
            image_size: 0,
            augment: AugmentConfig::default(),
            synthetic: SyntheticConfig::default(),
        }
    }
}

impl DataConfig {
    /// Range checks serde cannot express; the error starts with the key inside `[data]`.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(format!(
                "val_fraction must be in [0, 1) (got {})",
                self.val_fraction
            ));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(format!(
                "test_fraction must be in (0, 1) (got {})",
                self.test_fraction
            ));
        }
        if self.image_size > MAX_SIDE {
            return Err(format!(
                "image_size must be at most {MAX_SIDE} pixels (got {})",
                self.image_size
            ));
        }
        check_dataset_name(&self.dataset).map_err(|e| format!("dataset {e}"))?;
        self.synthetic
            .validate()
            .map_err(|e| format!("synthetic.{e}"))
    }
}

/// Random training-time augmentation. Off by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Random shift of up to this many pixels in each direction (a random crop of the zero-padded image).
    pub shift: usize,
    /// Random horizontal flip with probability 0.5.
    pub flip: bool,
}

impl AugmentConfig {
    /// Whether any augmentation is on.
    pub fn is_on(&self) -> bool {
        self.shift > 0 || self.flip
    }
}

/// `[data.synthetic]`: labelled images drawn from a trained GAN run's generator, added to the
/// training set (or, with `only`, used instead of it). They are drawn once when the run starts,
/// from noise seeded by the run's seed, as many per class as `ratio` × that class's real training
/// images; a resumed run draws the very same images, so resume stays exact. Validation and test
/// images stay real.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// The GAN run folder whose generator draws the images; absent = no synthetic images.
    pub generator: Option<PathBuf>,
    /// Generated images per real training image (of the same class).
    pub ratio: f64,
    /// Which of the GAN run's checkpoints: `best`, `last` or a step number.
    pub checkpoint: String,
    /// Train on the generated images alone (GAN-train: how well a classifier learns from them).
    pub only: bool,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            generator: None,
            ratio: 0.5,
            checkpoint: "best".into(),
            only: false,
        }
    }
}

impl SyntheticConfig {
    fn validate(&self) -> Result<(), String> {
        if !(self.ratio.is_finite() && self.ratio > 0.0 && self.ratio <= 100.0) {
            return Err(format!("ratio must be in (0, 100] (got {})", self.ratio));
        }
        if self.only && self.generator.is_none() {
            return Err("only = true needs a generator (a gan run folder)".into());
        }
        Ok(())
    }
}
