//! The CIFAR-10 binary format: records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32×32).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::set::{ImageSet, InputShape};

pub const SHAPE: InputShape = InputShape {
    channels: 3,
    height: 32,
    width: 32,
};
const RECORD: usize = 1 + 3 * 32 * 32;

pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_FILE: &str = "test_batch.bin";

/// The folder that holds all six batch files: `dir` itself or `dir/cifar-10-batches-bin`
/// (the layout of the official archive). A folder missing any of them is not a CIFAR-10 copy.
pub fn batches_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("cifar-10-batches-bin")]
        .into_iter()
        .find(|d| {
            TRAIN_FILES
                .iter()
                .chain([&TEST_FILE])
                .all(|f| d.join(f).is_file())
        })
}

/// Parses the records of one batch file.
pub fn parse(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u32>)> {
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        bail!(
            "{} bytes is not a whole number of {RECORD}-byte records (truncated?)",
            bytes.len()
        );
    }
    let n = bytes.len() / RECORD;
    let mut images = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            bail!("record {i} has label {}, CIFAR-10 labels are 0..9", rec[0]);
        }
        labels.push(rec[0] as u32);
        images.extend_from_slice(&rec[1..]);
    }
    Ok((images, labels))
}

/// Reads several batch files into one set.
pub fn read_files(paths: &[PathBuf]) -> Result<ImageSet> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for path in paths {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let (i, l) = parse(&bytes)
            .with_context(|| format!("{}: not a CIFAR-10 batch file", path.display()))?;
        images.extend(i);
        labels.extend(l);
    }
    ImageSet::new(SHAPE, images, labels)
}

/// Encodes a set as one CIFAR-10 batch file (for tests and tools).
pub fn encode(set: &ImageSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(set.len() * RECORD);
    for i in 0..set.len() {
        out.push(set.labels[i] as u8);
        out.extend_from_slice(set.image(i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let set =
            ImageSet::new(SHAPE, (0..2 * 3072).map(|i| i as u8).collect(), vec![3, 9]).unwrap();
        let bytes = encode(&set);
        let (images, labels) = parse(&bytes).unwrap();
        assert_eq!(ImageSet::new(SHAPE, images, labels).unwrap(), set);
        assert!(format!("{:#}", parse(&bytes[..100]).unwrap_err()).contains("truncated"));
        let mut bad = bytes.clone();
        bad[0] = 11;
        assert!(format!("{:#}", parse(&bad).unwrap_err()).contains("label 11"));
    }
}
