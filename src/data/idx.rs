//! The IDX format of MNIST, Fashion-MNIST and KMNIST: a big-endian header, then raw bytes.
//! Files may be gzipped (detected by their magic, not their name).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// An IDX array of unsigned bytes: its dimensions and its data, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (type 0x08), gzipped or raw.
pub fn read(path: &Path) -> Result<IdxArray> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&raw).with_context(|| format!("{}: not a valid IDX file", path.display()))
}

/// Parses IDX bytes (gzipped or raw), checking the magic, the dimensions and the exact length.
pub fn parse(raw: &[u8]) -> Result<IdxArray> {
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw)
            .read_to_end(&mut out)
            .context("gzip stream is corrupt or truncated")?;
        out
    } else {
        raw.to_vec()
    };
    if bytes.len() < 4 {
        bail!(
            "file is {} bytes long, too short for the 4-byte magic",
            bytes.len()
        );
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!(
            "bad magic {:02x?}: an IDX file starts with two zero bytes",
            &bytes[..4]
        );
    }
    if bytes[2] != 0x08 {
        bail!(
            "element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            bytes[2]
        );
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        bail!("zero dimensions");
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        bail!(
            "header declares {ndim} dimensions but the file ends after {} bytes",
            bytes.len()
        );
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let Some(expected) = expected else {
        bail!("dimensions {dims:?} overflow")
    };
    let actual = bytes.len() - header;
    if actual != expected {
        bail!(
            "dimensions {dims:?} need {expected} data bytes but the file has {actual} ({})",
            if actual < expected {
                "truncated"
            } else {
                "trailing data"
            }
        );
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Encodes bytes as an IDX file (raw, not gzipped).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Reads an images file and a labels file as one split: `[n, h, w]` images, `[n]` labels.
pub fn read_split(images: &Path, labels: &Path) -> Result<(Vec<u8>, Vec<u8>, usize, usize)> {
    let img = read(images)?;
    let lab = read(labels)?;
    split_from(img, lab).with_context(|| format!("{} / {}", images.display(), labels.display()))
}

/// Checks that an images array and a labels array belong together.
pub fn split_from(img: IdxArray, lab: IdxArray) -> Result<(Vec<u8>, Vec<u8>, usize, usize)> {
    if img.dims.len() != 3 {
        bail!(
            "images file has {} dimensions, expected 3 (count, height, width)",
            img.dims.len()
        );
    }
    if lab.dims.len() != 1 {
        bail!("labels file has {} dimensions, expected 1", lab.dims.len());
    }
    if img.dims[0] != lab.dims[0] {
        bail!("{} images but {} labels", img.dims[0], lab.dims[0]);
    }
    Ok((img.data, lab.data, img.dims[1], img.dims[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_raw_and_gzip() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let raw = encode(&[2, 3, 4], &data);
        assert_eq!(
            parse(&raw).unwrap(),
            IdxArray {
                dims: vec![2, 3, 4],
                data: data.clone()
            }
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        assert_eq!(parse(&gz.finish().unwrap()).unwrap().data, data);
    }

    #[test]
    fn malformed_files_are_rejected_with_reasons() {
        let good = encode(&[2, 2, 2], &[0; 8]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0, 0], "too short"),
            (vec![1, 0, 8, 1, 0, 0, 0, 0], "bad magic"),
            (vec![0, 0, 0x0d, 1, 0, 0, 0, 0], "not supported"),
            (vec![0, 0, 8, 3, 0, 0], "header declares"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            ([good.clone(), vec![9]].concat(), "trailing data"),
            (vec![0x1f, 0x8b, 1, 2, 3], "gzip"),
        ];
        for (bytes, want) in cases {
            let err = format!("{:#}", parse(&bytes).unwrap_err());
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }
}
