//! Where datasets come from: the built-in sample, the catalog of named datasets, the search for
//! their files on disk, and `fovea data download` with checksum verification.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::Digest;

use super::set::{FileRecord, ImageSet, InputShape, RawDataset};
use super::{cifar, idx};

/// The built-in sample: 1000 train + 200 test images per class of Fashion-MNIST
/// (made by scripts/make_sample.py; licence in data/sample/LICENSE).
const SAMPLE_TRAIN_IMAGES: &[u8] = include_bytes!("../../data/sample/train-images-idx3-ubyte.gz");
const SAMPLE_TRAIN_LABELS: &[u8] = include_bytes!("../../data/sample/train-labels-idx1-ubyte.gz");
const SAMPLE_TEST_IMAGES: &[u8] = include_bytes!("../../data/sample/t10k-images-idx3-ubyte.gz");
const SAMPLE_TEST_LABELS: &[u8] = include_bytes!("../../data/sample/t10k-labels-idx1-ubyte.gz");
pub const SAMPLE_ORIGIN: &str = "built-in sample (Fashion-MNIST subset, 10000 train + 2000 test)";

const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const KMNIST_CLASSES: [&str; 10] = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"];
const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// How a file's integrity is checked after download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Sha256(&'static str),
    /// The publishers of MNIST, Fashion-MNIST, KMNIST and CIFAR-10 publish MD5 digests only.
    Md5(&'static str),
}

/// One file of a named dataset, at its official location.
#[derive(Debug, Clone, Copy)]
pub struct RemoteFile {
    pub name: &'static str,
    pub url: &'static str,
    pub checksum: Checksum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Idx,
    Cifar10,
}

/// A dataset fovea knows by name.
#[derive(Debug, Clone, Copy)]
pub struct DatasetSpec {
    pub name: &'static str,
    pub format: Format,
    pub classes: &'static [&'static str],
    pub files: &'static [RemoteFile],
}

macro_rules! idx_files {
    ($base:literal, $a:literal, $b:literal, $c:literal, $d:literal) => {
        &[
            RemoteFile {
                name: IDX_FILES[0],
                url: concat!($base, "train-images-idx3-ubyte.gz"),
                checksum: Checksum::Md5($a),
            },
            RemoteFile {
                name: IDX_FILES[1],
                url: concat!($base, "train-labels-idx1-ubyte.gz"),
                checksum: Checksum::Md5($b),
            },
            RemoteFile {
                name: IDX_FILES[2],
                url: concat!($base, "t10k-images-idx3-ubyte.gz"),
                checksum: Checksum::Md5($c),
            },
            RemoteFile {
                name: IDX_FILES[3],
                url: concat!($base, "t10k-labels-idx1-ubyte.gz"),
                checksum: Checksum::Md5($d),
            },
        ]
    };
}

/// Named datasets, their official locations and published digests.
pub const CATALOG: [DatasetSpec; 4] = [
    DatasetSpec {
        name: "fashion-mnist",
        format: Format::Idx,
        classes: &FASHION_CLASSES,
        files: idx_files!(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310"
        ),
    },
    DatasetSpec {
        name: "mnist",
        format: Format::Idx,
        classes: &DIGITS,
        files: idx_files!(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c"
        ),
    },
    DatasetSpec {
        name: "kmnist",
        format: Format::Idx,
        classes: &KMNIST_CLASSES,
        files: idx_files!(
            "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
            "bdb82020997e1d708af4cf47b453dcf7",
            "e144d726b3acfaa3e44228e80efcd344",
            "5c965bf0a639b31b8f53240b1b52f4d7",
            "7320c461ea6c1c855c0b718fb2a4b134"
        ),
    },
    DatasetSpec {
        name: "cifar10",
        format: Format::Cifar10,
        classes: &cifar::CLASSES,
        files: &[RemoteFile {
            name: "cifar-10-binary.tar.gz",
            url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            checksum: Checksum::Md5("c32a1d4ab5d03f1284b67883e8d87530"),
        }],
    },
];

pub fn catalog(name: &str) -> Option<&'static DatasetSpec> {
    CATALOG.iter().find(|s| s.name == name)
}

/// Accepts a dataset name fovea knows, or says which names exist.
pub fn check_dataset_name(name: &str) -> std::result::Result<(), String> {
    if name == "sample" || name == "folder" || catalog(name).is_some() {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a dataset fovea knows; use one of: sample, folder, {}",
            CATALOG
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// The system-wide dataset folder: `$FOVEA_SYSTEM_DATA`, else Debian's `/usr/share/datasets`.
fn system_datasets() -> PathBuf {
    std::env::var_os("FOVEA_SYSTEM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/datasets"))
}

/// The places searched for a named dataset, in order, each with the reason it is searched.
pub fn candidates(name: &str, explicit: Option<&Path>) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    if let Some(p) = explicit {
        out.push((p.to_path_buf(), "given path"));
        out.push((p.join(name), "given path"));
        return out;
    }
    if let Some(root) = std::env::var_os("FOVEA_DATA") {
        out.push((PathBuf::from(root).join(name), "$FOVEA_DATA"));
    }
    if let Some(cache) = dirs::cache_dir() {
        out.push((cache.join("fovea").join(name), "user cache"));
    }
    out.push((system_datasets().join(name), "system datasets"));
    out
}

/// Where `fovea data download` puts a dataset: `$FOVEA_DATA/<name>` or the user cache.
pub fn download_dir(name: &str) -> Result<PathBuf> {
    if let Some(root) = std::env::var_os("FOVEA_DATA") {
        return Ok(PathBuf::from(root).join(name));
    }
    match dirs::cache_dir() {
        Some(cache) => Ok(cache.join("fovea").join(name)),
        None => {
            bail!("no user cache directory on this system; set FOVEA_DATA to a folder for datasets")
        }
    }
}

/// Whether `dir` holds a complete copy of `spec` in its on-disk layout.
fn is_complete(spec: &DatasetSpec, dir: &Path) -> bool {
    match spec.format {
        Format::Idx => IDX_FILES.iter().all(|f| idx_file(dir, f).is_some()),
        Format::Cifar10 => cifar::batches_dir(dir).is_some(),
    }
}

/// An IDX file, gzipped or not (`train-images-idx3-ubyte[.gz]`).
fn idx_file(dir: &Path, gz_name: &str) -> Option<PathBuf> {
    let gz = dir.join(gz_name);
    let raw = dir.join(gz_name.trim_end_matches(".gz"));
    [gz, raw].into_iter().find(|p| p.is_file())
}

/// Finds a named dataset on disk, or explains where it was looked for and how to get it.
pub fn locate(spec: &DatasetSpec, explicit: Option<&Path>) -> Result<PathBuf> {
    let tried = candidates(spec.name, explicit);
    if let Some((dir, _)) = tried.iter().find(|(dir, _)| is_complete(spec, dir)) {
        return Ok(dir.clone());
    }
    let list: Vec<String> = tried
        .iter()
        .map(|(d, why)| format!("  {} ({why})", d.display()))
        .collect();
    let debian = if spec.name == "fashion-mnist" {
        "\n  or on Debian/Ubuntu: apt-get install dataset-fashion-mnist"
    } else {
        ""
    };
    bail!(
        "dataset `{}` not found; looked in:\n{}\nget it with:\n  fovea data download {}{debian}\nor point --data-dir / data.path at a folder holding its files",
        spec.name,
        list.join("\n"),
        spec.name
    )
}

/// Reads a named dataset from a folder in its layout, recording each file's checksum.
pub fn load_dir(spec: &DatasetSpec, dir: &Path) -> Result<RawDataset> {
    let classes: Vec<String> = spec.classes.iter().map(|s| s.to_string()).collect();
    let origin = dir.display().to_string();
    match spec.format {
        Format::Idx => {
            let paths: Vec<PathBuf> = IDX_FILES
                .iter()
                .map(|f| {
                    idx_file(dir, f).with_context(|| format!("{}: missing {f}", dir.display()))
                })
                .collect::<Result<_>>()?;
            let train = idx_set(&paths[0], &paths[1], classes.len())?;
            let test = idx_set(&paths[2], &paths[3], classes.len())?;
            let files = paths
                .iter()
                .map(|p| file_record(p))
                .collect::<Result<_>>()?;
            Ok(RawDataset {
                train,
                test,
                unlabelled: None,
                classes,
                origin,
                files,
            })
        }
        Format::Cifar10 => {
            let bdir = cifar::batches_dir(dir)
                .with_context(|| format!("{}: no CIFAR-10 batch files", dir.display()))?;
            let train_paths: Vec<PathBuf> =
                cifar::TRAIN_FILES.iter().map(|f| bdir.join(f)).collect();
            let test_path = bdir.join(cifar::TEST_FILE);
            let train = cifar::read_files(&train_paths)?;
            let test = cifar::read_files(std::slice::from_ref(&test_path))?;
            let mut files: Vec<FileRecord> = train_paths
                .iter()
                .map(|p| file_record(p))
                .collect::<Result<_>>()?;
            files.push(file_record(&test_path)?);
            Ok(RawDataset {
                train,
                test,
                unlabelled: None,
                classes,
                origin,
                files,
            })
        }
    }
}

fn idx_set(images: &Path, labels: &Path, classes: usize) -> Result<ImageSet> {
    let (pixels, labels_raw, h, w) = idx::read_split(images, labels)?;
    into_set(pixels, labels_raw, h, w, classes).with_context(|| format!("{}", labels.display()))
}

fn into_set(
    pixels: Vec<u8>,
    labels: Vec<u8>,
    h: usize,
    w: usize,
    classes: usize,
) -> Result<ImageSet> {
    if let Some((i, y)) = labels
        .iter()
        .enumerate()
        .find(|(_, y)| **y as usize >= classes)
    {
        bail!("label {y} at index {i} is out of range for {classes} classes");
    }
    ImageSet::new(
        InputShape {
            channels: 1,
            height: h,
            width: w,
        },
        pixels,
        labels.into_iter().map(u32::from).collect(),
    )
}

/// The built-in sample, decoded from the bytes compiled into the binary.
pub fn sample() -> Result<RawDataset> {
    let set = |images: &[u8], labels: &[u8]| -> Result<ImageSet> {
        let (pixels, labels, h, w) = idx::split_from(idx::parse(images)?, idx::parse(labels)?)?;
        into_set(pixels, labels, h, w, FASHION_CLASSES.len())
    };
    Ok(RawDataset {
        train: set(SAMPLE_TRAIN_IMAGES, SAMPLE_TRAIN_LABELS).context("built-in sample (train)")?,
        test: set(SAMPLE_TEST_IMAGES, SAMPLE_TEST_LABELS).context("built-in sample (test)")?,
        unlabelled: None,
        classes: FASHION_CLASSES.iter().map(|s| s.to_string()).collect(),
        origin: SAMPLE_ORIGIN.to_string(),
        files: [
            SAMPLE_TRAIN_IMAGES,
            SAMPLE_TRAIN_LABELS,
            SAMPLE_TEST_IMAGES,
            SAMPLE_TEST_LABELS,
        ]
        .iter()
        .zip(["train-images", "train-labels", "test-images", "test-labels"])
        .map(|(bytes, name)| FileRecord {
            path: format!("builtin:{name}"),
            bytes: bytes.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
        })
        .collect(),
    })
}

/// Size and SHA-256 of a file, read in chunks.
pub fn file_record(path: &Path) -> Result<FileRecord> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileRecord {
        path: path.display().to_string(),
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Downloads `file` into `dir`, verifying its checksum before it takes its final name.
/// Returns its SHA-256. A file already there with the right checksum is kept.
pub fn download_file(file: &RemoteFile, dir: &Path, quiet: bool) -> Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join(file.name);
    if dest.is_file() && verify(&dest, file.checksum).is_ok() {
        return Ok(file_record(&dest)?.sha256);
    }
    let response = ureq::get(file.url)
        .call()
        .with_context(|| format!("download of {} failed", file.url))?;
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bar = crate::progress::download_bar(file.name, total, quiet);
    let tmp = dir.join(format!(".{}.part", file.name));
    let mut out =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut reader = response.into_body().into_reader();
    let (mut sha, mut md5) = (sha2::Sha256::new(), md5::Md5::new());
    let mut received = 0u64;
    let mut copy = || -> Result<()> {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf).context("the connection failed")?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            md5.update(&buf[..n]);
            out.write_all(&buf[..n])
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            received += n as u64;
            bar.inc(n as u64);
        }
        if let Some(total) = total.filter(|&t| received < t) {
            bail!("the server sent {received} of its {total} bytes");
        }
        out.sync_all()
            .with_context(|| format!("cannot write {}", tmp.display()))
    };
    let copied = copy();
    drop(out);
    bar.finish_and_clear();
    if let Err(e) = copied {
        std::fs::remove_file(&tmp).ok();
        return Err(e.context(format!(
            "download of {} broke off after {received} bytes{}; nothing was kept",
            file.url,
            total.map(|t| format!(" of {t}")).unwrap_or_default()
        )));
    }
    let (sha, md5) = (hex::encode(sha.finalize()), hex::encode(md5.finalize()));
    let (kind, want, got) = match file.checksum {
        Checksum::Sha256(want) => ("SHA-256", want, &sha),
        Checksum::Md5(want) => ("MD5", want, &md5),
    };
    if !want.eq_ignore_ascii_case(got) {
        std::fs::remove_file(&tmp).ok();
        bail!(
            "{}: {kind} mismatch (expected {want}, got {got}); the download was discarded",
            file.url
        );
    }
    std::fs::rename(&tmp, &dest)
        .with_context(|| format!("cannot move download to {}", dest.display()))?;
    Ok(sha)
}

/// Checks a file on disk against a checksum.
pub fn verify(path: &Path, checksum: Checksum) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (want, got) = match checksum {
        Checksum::Sha256(want) => (want, hex::encode(sha2::Sha256::digest(&bytes))),
        Checksum::Md5(want) => (want, hex::encode(md5::Md5::digest(&bytes))),
    };
    if !want.eq_ignore_ascii_case(&got) {
        bail!(
            "{}: checksum mismatch (expected {want}, got {got})",
            path.display()
        );
    }
    Ok(())
}

/// Unpacks a gzipped tar archive into `dir`. An entry that would land outside `dir` (an
/// absolute path, a `..`) or that is a link or a device is refused, before anything of it is
/// written.
pub fn unpack(archive: impl Read, dir: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in archive.entries().context("not a tar archive")? {
        let mut entry = entry.context("a corrupt archive entry")?;
        let path = entry.path().context("an entry's path")?.into_owned();
        let inside = path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if !inside {
            bail!(
                "entry {} would land outside {}; refused",
                path.display(),
                dir.display()
            );
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            bail!(
                "entry {} is not a file or a folder ({kind:?}); refused",
                path.display()
            );
        }
        entry
            .unpack_in(dir)
            .with_context(|| format!("cannot write {}", dir.join(&path).display()))?;
    }
    Ok(())
}

/// Downloads every file of `spec` into `dir`, unpacks archives, and writes `SHA256SUMS`.
pub fn download(spec: &DatasetSpec, dir: &Path, quiet: bool) -> Result<()> {
    let mut sums = String::new();
    for file in spec.files {
        if !quiet {
            eprintln!("downloading {} …", file.url);
        }
        let sha = download_file(file, dir, quiet)?;
        sums.push_str(&format!("{sha}  {}\n", file.name));
        if file.name.ends_with(".tar.gz") {
            let path = dir.join(file.name);
            let archive = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            unpack(archive, dir)
                .with_context(|| format!("cannot unpack {} into {}", file.name, dir.display()))?;
        }
    }
    crate::fsio::write_atomic(&dir.join("SHA256SUMS"), sums.as_bytes())?;
    if !is_complete(spec, dir) {
        bail!(
            "{}: downloaded files do not form a complete `{}` dataset",
            dir.display(),
            spec.name
        );
    }
    Ok(())
}
