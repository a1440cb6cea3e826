//! Users' own images: `root/<class>/*.png|jpg|…`, or `root/train/<class>/…` + `root/test/<class>/…`.
//! Class names are the folder names, sorted. A folder named `unlabelled` beside the class folders
//! (in `root/`, or in `root/train/`) holds training images without labels. Images are converted to the channels and size of the
//! set (grayscale when every image is grayscale, else RGB; the size of the first image unless
//! `image_size` is set).
//!
//! A file is an image when its extension names an image format. Formats this build decodes are
//! read; any other image format is an error that names the file (never a silent skip). The set's
//! files are recorded as one SHA-256 over a sorted manifest of (path, SHA-256 of the contents), so a
//! resumed run can tell changed data from the same data.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::ImageFormat;
use sha2::{Digest, Sha256};

use super::set::{FileRecord, ImageSet, InputShape, MAX_SIDE, RawDataset};
use super::split::stratified_split;

/// The image files of one class folder.
type Class = (String, Vec<PathBuf>);

/// The folder beside the class folders whose images have no label.
pub const UNLABELLED: &str = "unlabelled";

/// Whether `path` is an image fovea can read: `Ok(true)` for a decodable format, `Ok(false)` for a
/// file that is not an image, an error for an image format this build cannot decode.
fn is_readable_image(path: &Path) -> Result<bool> {
    let Some(format) = path.extension().and_then(ImageFormat::from_extension) else {
        return Ok(false);
    };
    if !format.reading_enabled() {
        bail!(
            "{}: {format:?} images cannot be read by this build of fovea; convert it to one of: {}",
            path.display(),
            readable_extensions().join(", ")
        );
    }
    Ok(true)
}

/// The file extensions of every image format this build decodes.
pub fn readable_extensions() -> Vec<&'static str> {
    ImageFormat::all()
        .filter(|f| f.reading_enabled())
        .flat_map(|f| f.extensions_str().iter().copied())
        .collect()
}

/// Lists `(class name, image paths)` under `root`, classes sorted by name, files by path, and
/// the image paths of its `unlabelled/` folder (none when it has none).
fn scan(root: &Path) -> Result<(Vec<Class>, Vec<PathBuf>)> {
    let mut classes = Vec::new();
    let mut unlabelled = Vec::new();
    let entries = std::fs::read_dir(root)
        .with_context(|| format!("cannot list image folder {}", root.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", root.display()))?;
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        if !kind.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        for f in std::fs::read_dir(entry.path())
            .with_context(|| format!("cannot list {}", entry.path().display()))?
        {
            let path = f
                .with_context(|| format!("cannot list {}", entry.path().display()))?
                .path();
            if is_readable_image(&path)? {
                files.push(path);
            }
        }
        files.sort();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == UNLABELLED {
            unlabelled = files;
        } else if !files.is_empty() {
            classes.push((name, files));
        }
    }
    classes.sort_by(|a, b| a.0.cmp(&b.0));
    if classes.len() < 2 {
        bail!(
            "image folder {}: found {} class folder(s) with images; expected root/<class>/*.png|jpg|… with at least 2 classes",
            root.display(),
            classes.len()
        );
    }
    Ok((classes, unlabelled))
}

/// Decodes one image file into the set's shape.
pub fn decode(path: &Path, shape: InputShape) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    decode_bytes(path, &bytes, shape)
}

fn decode_bytes(path: &Path, bytes: &[u8], shape: InputShape) -> Result<Vec<u8>> {
    Ok(to_shape(open_bytes(path, bytes, MAX_DECODED_SIDE)?, shape))
}

/// The largest side of an image decoded to be resized (a photo of a camera's full resolution).
const MAX_DECODED_SIDE: u32 = 16_384;

/// Decodes an image no wider or taller than `max_side`, refused from its header before any pixel
/// is decoded.
fn open_bytes(path: &Path, bytes: &[u8], max_side: u32) -> Result<image::DynamicImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(u64::from(max_side) * u64::from(max_side) * 4);
    reader.limits(limits);
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => anyhow::anyhow!(
            "image {} is too large to decode (at most {max_side} pixels a side)",
            path.display()
        ),
        e => anyhow::Error::new(e).context(format!("cannot decode image {}", path.display())),
    })
}

/// Decodes one image file at its own size, converted to `channels` (1 or 3).
pub fn decode_native(path: &Path, channels: usize) -> Result<(InputShape, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let img = open_bytes(path, &bytes, MAX_SIDE as u32)?;
    let shape = InputShape {
        channels,
        height: img.height() as usize,
        width: img.width() as usize,
    };
    shape
        .check()
        .with_context(|| format!("{}", path.display()))?;
    Ok((shape, to_shape(img, shape)))
}

/// Converts a decoded image to `shape` (channels, then size), channel-major.
pub fn to_shape(img: image::DynamicImage, shape: InputShape) -> Vec<u8> {
    let img = if img.width() as usize != shape.width || img.height() as usize != shape.height {
        img.resize_exact(
            shape.width as u32,
            shape.height as u32,
            image::imageops::FilterType::Triangle,
        )
    } else {
        img
    };
    if shape.channels == 1 {
        img.to_luma8().into_raw()
    } else {
        let rgb = img.to_rgb8();
        let plane = shape.height * shape.width;
        let mut out = vec![0u8; 3 * plane];
        for (i, px) in rgb.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = px.0[c];
            }
        }
        out
    }
}

/// Decodes every image of `classes` (labels by position in `names`), adding each file's path
/// (relative to `root`) and SHA-256 to `manifest`.
fn load_set(
    root: &Path,
    classes: &[Class],
    names: &[String],
    shape: InputShape,
    manifest: &mut Manifest,
) -> Result<ImageSet> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (name, files) in classes {
        let Some(label) = names.iter().position(|n| n == name) else {
            bail!("class folder `{name}` appears in the test set but not in the training set");
        };
        for f in files {
            let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
            manifest.add(root, f, &bytes);
            images.extend(decode_bytes(f, &bytes, shape)?);
            labels.push(label as u32);
        }
    }
    ImageSet::new(shape, images, labels)
}

/// An image file's width, height and whether it has colour, from its header alone.
pub fn header(path: &Path) -> Result<(u32, u32, bool)> {
    let decoder = image::ImageReader::open(path)
        .with_context(|| format!("cannot open image {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", path.display()))?
        .into_decoder()
        .with_context(|| format!("cannot decode image {}", path.display()))?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    Ok((w, h, image::ImageDecoder::color_type(&decoder).has_color()))
}

/// Picks channels and size from the images: RGB if any image has colour.
fn infer_shape(classes: &[Class], image_size: usize) -> Result<InputShape> {
    let mut first = None;
    let mut color = false;
    'all: for (_, files) in classes {
        for f in files {
            let (w, h, has_color) = header(f)?;
            first.get_or_insert((h as usize, w as usize));
            if has_color {
                color = true;
                break 'all;
            }
        }
    }
    let (h, w) = match (image_size, first) {
        (0, Some(hw)) => hw,
        _ => (image_size, image_size),
    };
    let shape = InputShape {
        channels: if color { 3 } else { 1 },
        height: h,
        width: w,
    };
    shape.check().context(if image_size == 0 {
        "the first image's size (set data.image_size to resize every image)"
    } else {
        "data.image_size"
    })?;
    Ok(shape)
}

/// (relative path, SHA-256) of every file read, and their total size.
#[derive(Default)]
struct Manifest {
    entries: Vec<(String, String)>,
    bytes: u64,
}

impl Manifest {
    fn add(&mut self, root: &Path, file: &Path, bytes: &[u8]) {
        let rel = file.strip_prefix(root).unwrap_or(file);
        self.entries.push((
            rel.to_string_lossy().replace('\\', "/"),
            hex::encode(Sha256::digest(bytes)),
        ));
        self.bytes += bytes.len() as u64;
    }

    /// One record for the whole folder: the SHA-256 of the sorted `sha256  path` lines.
    fn record(mut self, root: &Path) -> FileRecord {
        self.entries.sort();
        let mut text = String::new();
        for (path, sha) in &self.entries {
            text.push_str(&format!("{sha}  {path}\n"));
        }
        FileRecord {
            path: format!(
                "{} (manifest of {} image files)",
                root.display(),
                self.entries.len()
            ),
            bytes: self.bytes,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
        }
    }
}

/// Loads an image-folder dataset. Without `train/` and `test/` subfolders, `test_fraction` of
/// each class is held out as the test set, chosen by `seed`.
pub fn load(root: &Path, image_size: usize, test_fraction: f64, seed: u64) -> Result<RawDataset> {
    let (train_dir, test_dir) = (root.join("train"), root.join("test"));
    let origin = root.display().to_string();
    let mut manifest = Manifest::default();
    if train_dir.is_dir() && test_dir.is_dir() {
        let (train_classes, unlabelled) = scan(&train_dir)?;
        let (test_classes, unlabelled_tests) = scan(&test_dir)?;
        if !unlabelled_tests.is_empty() {
            bail!(
                "{}: test images need labels; an {UNLABELLED}/ folder belongs in {}",
                test_dir.join(UNLABELLED).display(),
                train_dir.display()
            );
        }
        let names: Vec<String> = train_classes.iter().map(|c| c.0.clone()).collect();
        let shape = infer_shape(&train_classes, image_size)?;
        let train = load_set(root, &train_classes, &names, shape, &mut manifest)?;
        let test = load_set(root, &test_classes, &names, shape, &mut manifest)?;
        let unlabelled = load_unlabelled(root, &unlabelled, shape, &mut manifest)?;
        return Ok(RawDataset {
            train,
            test,
            unlabelled,
            classes: names,
            origin,
            files: vec![manifest.record(root)],
        });
    }
    let (classes, unlabelled) = scan(root)?;
    let names: Vec<String> = classes.iter().map(|c| c.0.clone()).collect();
    let shape = infer_shape(&classes, image_size)?;
    let all = load_set(root, &classes, &names, shape, &mut manifest)?;
    let unlabelled = load_unlabelled(root, &unlabelled, shape, &mut manifest)?;
    let (train_idx, test_idx) =
        stratified_split(&all.labels, names.len(), test_fraction, seed ^ 0x7e57);
    if test_idx.is_empty() {
        bail!(
            "image folder {origin}: too few images to hold out a test set (test_fraction = {test_fraction})"
        );
    }
    Ok(RawDataset {
        train: all.select(&train_idx),
        test: all.select(&test_idx),
        unlabelled,
        classes: names,
        origin,
        files: vec![manifest.record(root)],
    })
}

/// Decodes the images of an `unlabelled/` folder into the set's shape (none: no set).
fn load_unlabelled(
    root: &Path,
    files: &[PathBuf],
    shape: InputShape,
    manifest: &mut Manifest,
) -> Result<Option<ImageSet>> {
    if files.is_empty() {
        return Ok(None);
    }
    let set = load_set(
        root,
        &[(UNLABELLED.to_string(), files.to_vec())],
        &[UNLABELLED.to_string()],
        shape,
        manifest,
    )?;
    Ok(Some(set))
}

/// One `[c, h, w]` image as PNG (grayscale or RGB).
pub fn save_png(path: &Path, chw: &[u8], shape: InputShape) -> Result<()> {
    let (w, h) = (shape.width as u32, shape.height as u32);
    let plane = shape.height * shape.width;
    let result = if shape.channels == 1 {
        image::GrayImage::from_raw(w, h, chw.to_vec())
            .context("image buffer")?
            .save(path)
    } else {
        let hwc: Vec<u8> = (0..plane)
            .flat_map(|p| (0..3).map(move |c| chw[c.min(shape.channels - 1) * plane + p]))
            .collect();
        image::RgbImage::from_raw(w, h, hwc)
            .context("image buffer")?
            .save(path)
    };
    result.with_context(|| format!("cannot write {}", path.display()))
}
