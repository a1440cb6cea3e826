//! The IDX format of MNIST, Fashion-MNIST and KMNIST: a big-endian header, then raw bytes.
//! Files may be gzipped (detected by their magic, not their name).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::device;

/// An IDX array of unsigned bytes: its dimensions and its data, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (type 0x08), gzipped or raw.
pub fn read(path: &Path) -> Result<IdxArray> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    device::check_fits(&format!("reading {}", path.display()), len as u128)?;
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&raw).with_context(|| format!("{}: not a valid IDX file", path.display()))
}

/// Parses IDX bytes (gzipped or raw), checking the magic, the dimensions and the exact length.
/// A gzipped file is inflated no further than its header says the data goes (and one byte more,
/// to see trailing data), and only once the header's size fits in memory.
pub fn parse(raw: &[u8]) -> Result<IdxArray> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        parse_stream(flate2::read::GzDecoder::new(raw))
    } else {
        parse_stream(raw)
    }
}

fn parse_stream(mut r: impl Read) -> Result<IdxArray> {
    let mut magic = [0u8; 4];
    let got = read_full(&mut r, &mut magic)?;
    if got < 4 {
        bail!("file is {got} bytes long, too short for the 4-byte magic");
    }
    if magic[0] != 0 || magic[1] != 0 {
        bail!("bad magic {magic:02x?}: an IDX file starts with two zero bytes");
    }
    if magic[2] != 0x08 {
        bail!(
            "element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            magic[2]
        );
    }
    let ndim = magic[3] as usize;
    if ndim == 0 {
        bail!("zero dimensions");
    }
    let mut header = vec![0u8; 4 * ndim];
    let got = read_full(&mut r, &mut header)?;
    if got < header.len() {
        bail!(
            "header declares {ndim} dimensions but the file ends after {} bytes",
            4 + got
        );
    }
    let dims: Vec<usize> = header
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize)
        .collect();
    if let Some(i) = dims.iter().position(|&d| d == 0) {
        bail!("dimension {i} of {dims:?} is 0");
    }
    let Some(expected) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        bail!("dimensions {dims:?} overflow")
    };
    device::check_fits(
        &format!("IDX data of dimensions {dims:?}"),
        expected as u128,
    )?;
    let mut data = Vec::new();
    r.take(expected as u64 + 1)
        .read_to_end(&mut data)
        .context("gzip stream is corrupt or truncated")?;
    if data.len() < expected {
        bail!(
            "dimensions {dims:?} need {expected} data bytes but the file has {} (truncated)",
            data.len()
        );
    }
    if data.len() > expected {
        bail!(
            "dimensions {dims:?} need {expected} data bytes but the file has more (trailing data)"
        );
    }
    Ok(IdxArray { dims, data })
}

/// Reads until `buf` is full or the stream ends; the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("gzip stream is corrupt or truncated"),
        }
    }
    Ok(got)
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

    /// A gzip stream whose header declares `dims` followed by `len` zero bytes.
    fn gzipped(dims: &[usize], len: usize) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &encode(dims, &[])).unwrap();
        let zeros = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len());
            std::io::Write::write_all(&mut gz, &zeros[..n]).unwrap();
            left -= n;
        }
        gz.finish().unwrap()
    }

    /// A reader that counts the bytes it hands out.
    struct Counted<R> {
        inner: R,
        read: usize,
    }

    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n;
            Ok(n)
        }
    }

    #[test]
    fn a_gzip_stream_is_inflated_no_further_than_its_header_says() {
        // 64 MiB of zeros behind a header that declares 8 bytes: the trailing data is found
        // one byte past them, not after inflating all of it.
        let bomb = gzipped(&[2, 2, 2], 64 << 20);
        let mut stream = Counted {
            inner: flate2::read::GzDecoder::new(&bomb[..]),
            read: 0,
        };
        let err = format!("{:#}", parse_stream(&mut stream).unwrap_err());
        assert!(err.contains("trailing data"), "{err}");
        assert!(
            stream.read <= 4 + 12 + 8 + 1,
            "inflated {} bytes",
            stream.read
        );
        assert!(format!("{:#}", parse(&bomb).unwrap_err()).contains("trailing data"));
    }

    #[test]
    fn a_header_larger_than_memory_is_refused_before_inflating() {
        let err = format!(
            "{:#}",
            parse(&gzipped(&[1 << 20, 1 << 20, 1 << 10], 0)).unwrap_err()
        );
        assert!(err.contains("this machine has"), "{err}");
    }

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
            (encode(&[2, 0, 2], &[]), "dimension 1 of [2, 0, 2] is 0"),
            (encode(&[u32::MAX as usize; 3], &[]), "overflow"),
        ];
        for (bytes, want) in cases {
            let err = format!("{:#}", parse(&bytes).unwrap_err());
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }
}
