//! Image data: formats (IDX, CIFAR-10 binary, image folders), the built-in sample, where named
//! datasets are found, the train/validation/test splits, and batching.
//!
//! Every split is decoded once into one contiguous `u8` buffer (N × C × H × W); batches are cut
//! from it by index (see `batch`).

pub mod batch;
pub mod cifar;
pub mod folder;
pub mod idx;
pub mod sources;

use anyhow::{Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::config::DataConfig;

/// The shape of one image as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl InputShape {
    pub fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }
}

impl std::fmt::Display for InputShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.channels, self.height, self.width)
    }
}

/// Labelled images in one contiguous buffer, channel-major per image (C × H × W).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub shape: InputShape,
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
}

impl ImageSet {
    pub fn new(shape: InputShape, images: Vec<u8>, labels: Vec<u32>) -> Result<Self> {
        if images.len() != shape.pixels() * labels.len() {
            bail!(
                "{} pixel bytes do not make {} images of {shape}",
                images.len(),
                labels.len()
            );
        }
        Ok(Self {
            shape,
            images,
            labels,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.pixels();
        &self.images[i * n..(i + 1) * n]
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let mut images = Vec::with_capacity(indices.len() * self.shape.pixels());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        ImageSet {
            shape: self.shape,
            images,
            labels,
        }
    }

    /// Images per class.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &y in &self.labels {
            counts[y as usize] += 1;
        }
        counts
    }
}

/// One file a dataset was read from, for the run record and `fovea data info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Where a run's data came from, written into `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataSource {
    /// The dataset name as configured.
    pub dataset: String,
    /// A path, or "built-in sample".
    pub origin: String,
    pub files: Vec<FileRecord>,
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub classes: Vec<String>,
    pub shape: InputShape,
}

/// A dataset before the validation split: the full training set and the test set.
#[derive(Debug)]
pub struct RawDataset {
    pub train: ImageSet,
    pub test: ImageSet,
    pub classes: Vec<String>,
    pub origin: String,
    pub files: Vec<FileRecord>,
}

/// The three splits a run uses.
pub struct Splits {
    pub train: ImageSet,
    pub val: ImageSet,
    pub test: ImageSet,
    pub source: DataSource,
}

/// Accepts a configured dataset name, or says which names exist.
pub fn check_dataset_name(name: &str) -> std::result::Result<(), String> {
    if name == "sample" || name == "folder" || sources::catalog(name).is_some() {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a dataset fovea knows; use one of: sample, folder, {}",
            sources::CATALOG
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// Loads the configured dataset and splits it: validation held out of the training set by the
/// seed (stratified per class), then the limits applied.
pub fn load(config: &DataConfig, seed: u64, quiet: bool) -> Result<Splits> {
    let raw = sources::load_raw(config, seed, quiet)?;
    let classes = raw.classes.len();
    let (train_idx, val_idx) =
        stratified_split(&raw.train.labels, classes, config.val_fraction, seed);
    let mut train_idx = train_idx;
    if config.train_limit > 0 && train_idx.len() > config.train_limit {
        train_idx = stratified_take(&raw.train.labels, &train_idx, classes, config.train_limit);
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
    if train.is_empty() {
        bail!(
            "dataset `{}` has no training images left after the validation split",
            config.dataset
        );
    }
    let source = DataSource {
        dataset: config.dataset.clone(),
        origin: raw.origin,
        files: raw.files,
        train: train.len(),
        val: val.len(),
        test: test.len(),
        classes: raw.classes,
        shape: train.shape,
    };
    Ok(Splits {
        train,
        val,
        test,
        source,
    })
}

/// Splits indices into (kept, held out), holding out `fraction` of each class, chosen by `seed`.
/// Both lists come back in ascending order.
pub fn stratified_split(
    labels: &[u32],
    classes: usize,
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut by_class = vec![Vec::new(); classes];
    for (i, &y) in labels.iter().enumerate() {
        by_class[y as usize].push(i);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ SPLIT_SALT);
    let (mut kept, mut held) = (Vec::new(), Vec::new());
    for mut idx in by_class {
        idx.shuffle(&mut rng);
        let n_held = (idx.len() as f64 * fraction).round() as usize;
        held.extend_from_slice(&idx[..n_held]);
        kept.extend_from_slice(&idx[n_held..]);
    }
    kept.sort_unstable();
    held.sort_unstable();
    (kept, held)
}

/// Takes `n` of `indices` keeping class proportions (first ones of each class, in order).
fn stratified_take(labels: &[u32], indices: &[usize], classes: usize, n: usize) -> Vec<usize> {
    let total = indices.len();
    let mut per_class = vec![0usize; classes];
    for &i in indices {
        per_class[labels[i] as usize] += 1;
    }
    let quota: Vec<usize> = per_class.iter().map(|&c| (c * n).div_ceil(total)).collect();
    let mut taken = vec![0usize; classes];
    let mut out = Vec::with_capacity(n);
    for &i in indices {
        let y = labels[i] as usize;
        if taken[y] < quota[y] && out.len() < n {
            taken[y] += 1;
            out.push(i);
        }
    }
    out
}

/// A constant mixed into the split seed so that the split and the epoch order differ.
const SPLIT_SALT: u64 = 0x5EED_5B11_7000_0001;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stratified_deterministic_and_disjoint() {
        let labels: Vec<u32> = (0..1000).map(|i| (i % 10) as u32).collect();
        let (a, b) = stratified_split(&labels, 10, 0.1, 7);
        assert_eq!(b.len(), 100);
        assert_eq!(a.len(), 900);
        assert_eq!(
            stratified_split(&labels, 10, 0.1, 7),
            (a.clone(), b.clone())
        );
        assert_ne!(stratified_split(&labels, 10, 0.1, 8).1, b);
        for c in 0..10 {
            assert_eq!(b.iter().filter(|&&i| labels[i] == c).count(), 10);
        }
        assert!(a.iter().all(|i| !b.contains(i)));
    }
}
