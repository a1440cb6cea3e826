//! Images in memory: the shape of one image, a labelled set in one contiguous buffer, and a
//! dataset as read from disk (before the validation split) with the files it came from.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// The shape of one image as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// The largest image side fovea takes (height or width).
pub const MAX_SIDE: usize = 4096;
/// The most channels an image may have.
pub const MAX_CHANNELS: usize = 4;

impl InputShape {
    /// The images of the MNIST family (MNIST, Fashion-MNIST, KMNIST): one channel, 28 × 28.
    pub const MNIST: InputShape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };

    pub fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Refuses an empty or oversized shape (which would otherwise fail deep in the batching or
    /// the model, or exhaust memory).
    pub fn check(&self) -> Result<()> {
        if self.channels == 0 || self.height == 0 || self.width == 0 {
            bail!("images of {self} are empty");
        }
        if self.channels > MAX_CHANNELS || self.height > MAX_SIDE || self.width > MAX_SIDE {
            bail!(
                "images of {self} are too large (at most {MAX_CHANNELS} channels and \
                 {MAX_SIDE} pixels a side)"
            );
        }
        Ok(())
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
        shape.check()?;
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

    /// The same images with every label withheld (0).
    pub fn without_labels(self) -> ImageSet {
        let n = self.len();
        ImageSet {
            labels: vec![0; n],
            ..self
        }
    }

    /// Appends `other`'s images and labels (of the same shape).
    pub fn append(&mut self, other: &ImageSet) {
        debug_assert_eq!(self.shape, other.shape);
        self.images.extend_from_slice(&other.images);
        self.labels.extend_from_slice(&other.labels);
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

/// One file a dataset was read from (or, for an image folder, the digest of all its files), for
/// the run record and `fovea data info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// A dataset before the validation split: the full training set and the test set.
#[derive(Debug)]
pub struct RawDataset {
    pub train: ImageSet,
    pub test: ImageSet,
    /// Training images that come without labels (an image folder's `unlabelled/`), labels
    /// withheld (0).
    pub unlabelled: Option<ImageSet>,
    pub classes: Vec<String>,
    pub origin: String,
    pub files: Vec<FileRecord>,
}
