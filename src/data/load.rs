//! From a `[data]` section to the three splits a run uses: find and read the dataset, hold out
//! the validation set (stratified, by seed), apply the limits, and record where it all came from.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::config::DataConfig;
use super::set::{FileRecord, ImageSet, InputShape, RawDataset};
use super::split::{labels_per_class, stratified_split, stratified_take};
use super::{folder, sources};

/// Where a run's data came from, written into `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataSource {
    /// The dataset actually used (`sample` when a missing `fashion-mnist` fell back to it).
    pub dataset: String,
    /// A path, or "built-in sample".
    pub origin: String,
    /// Why another dataset than the configured one was used; absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    pub files: Vec<FileRecord>,
    /// Labelled training images.
    pub train: usize,
    /// Training images left without their labels (`data.labels_per_class`), not trained on by
    /// a supervised kind.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unlabelled: usize,
    pub val: usize,
    pub test: usize,
    pub classes: Vec<String>,
    pub shape: InputShape,
    /// The generated images in the training set (`[data.synthetic]`); absent when none are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticSource>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Where a training set's generated images came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SyntheticSource {
    /// The GAN run folder.
    pub generator: String,
    /// The checkpoint file the generator was read from, and its step.
    pub checkpoint: String,
    pub step: u64,
    /// How many generated images the training set holds, and how many real ones.
    pub images: usize,
    pub real: usize,
    pub seed: u64,
}

/// The three splits a run uses, and the training images left without their labels.
pub struct Splits {
    /// The labelled training images.
    pub train: ImageSet,
    /// The training images without labels (each label withheld: 0): those
    /// `data.labels_per_class` left without theirs, and an image folder's `unlabelled/`.
    pub unlabelled: ImageSet,
    pub val: ImageSet,
    pub test: ImageSet,
    pub source: DataSource,
}

/// Loads the configured dataset and splits it: validation held out of the training set by the
/// seed (stratified per class), then the limits applied, then `labels_per_class`.
pub fn load(config: &DataConfig, seed: u64) -> Result<Splits> {
    let (raw, dataset, fallback) = load_raw(config, seed)?;
    let classes = raw.classes.len();
    let (mut train_idx, val_idx) =
        stratified_split(&raw.train.labels, classes, config.val_fraction, seed);
    if config.train_limit > 0 && train_idx.len() > config.train_limit {
        train_idx = stratified_take(&raw.train.labels, &train_idx, classes, config.train_limit);
    }
    let mut withheld = Vec::new();
    if config.labels_per_class > 0 {
        let (labelled, rest) = labels_per_class(
            &raw.train.labels,
            &train_idx,
            classes,
            config.labels_per_class,
            seed,
        );
        (train_idx, withheld) = (labelled, rest);
    }
    let mut test = raw.test;
    if config.test_limit > 0 && test.len() > config.test_limit {
        let all: Vec<usize> = (0..test.len()).collect();
        test = test.select(&stratified_take(
            &test.labels,
            &all,
            classes,
            config.test_limit,
        ));
    }
    let train = raw.train.select(&train_idx);
    let val = raw.train.select(&val_idx);
    let mut unlabelled = raw.train.select(&withheld).without_labels();
    if let Some(extra) = &raw.unlabelled {
        // an image folder's unlabelled/ (already in the set's shape, labels 0)
        unlabelled.append(extra);
    }
    if train.is_empty() {
        bail!("dataset `{dataset}` has no training images left after the validation split");
    }
    let source = DataSource {
        dataset,
        origin: raw.origin,
        fallback,
        files: raw.files,
        train: train.len(),
        unlabelled: unlabelled.len(),
        val: val.len(),
        test: test.len(),
        classes: raw.classes,
        shape: train.shape,
        synthetic: None,
    };
    Ok(Splits {
        train,
        unlabelled,
        val,
        test,
        source,
    })
}

impl Splits {
    /// Every training image, the labelled ones first, each label withheld (0): what an epoch
    /// of a semi-supervised run passes over.
    pub fn all_without_labels(&self) -> ImageSet {
        let mut all = self.train.clone().without_labels();
        all.append(&self.unlabelled);
        all
    }
}

/// Reads the configured dataset (without the validation split). Returns it with the name of the
/// dataset actually used and, when that is not the configured one, why.
pub fn load_raw(config: &DataConfig, seed: u64) -> Result<(RawDataset, String, Option<String>)> {
    let name = config.dataset.as_str();
    let raw = match name {
        "sample" => sources::sample()?,
        "folder" => {
            let Some(path) = &config.path else {
                bail!(
                    "data.dataset = \"folder\" needs data.path (or --data-dir) naming the image folder"
                );
            };
            folder::load(path, config.image_size, config.test_fraction, seed)?
        }
        _ => {
            let Some(spec) = sources::catalog(name) else {
                bail!(
                    "data.dataset {}",
                    sources::check_dataset_name(name).unwrap_err()
                );
            };
            match sources::locate(spec, config.path.as_deref()) {
                Ok(dir) => sources::load_dir(spec, &dir)?,
                // Only an unconfigured Fashion-MNIST falls back, to the sample it contains.
                Err(_) if spec.name == "fashion-mnist" && config.path.is_none() => {
                    let looked: Vec<String> = sources::candidates(spec.name, None)
                        .iter()
                        .map(|(d, _)| d.display().to_string())
                        .collect();
                    let why = format!(
                        "dataset `{}` was not found (looked in {}); used the built-in sample instead \
                         (get the full dataset with `fovea data download {}`)",
                        spec.name,
                        looked.join(", "),
                        spec.name
                    );
                    return Ok((sources::sample()?, "sample".into(), Some(why)));
                }
                Err(e) => return Err(e),
            }
        }
    };
    Ok((raw, name.to_string(), None))
}
