//! Users' own images: `root/<class>/*.png|jpg|…`, or `root/train/<class>/…` + `root/test/<class>/…`.
//! Class names are the folder names, sorted. Images are converted to the channels and size of the
//! set (grayscale when every image is grayscale, else RGB; the size of the first image unless
//! `image_size` is set).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{ImageSet, InputShape, RawDataset, stratified_split};

const EXTENSIONS: [&str; 9] = [
    "png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp", "pgm",
];

/// Lists `(class name, image paths)` under `root`, classes sorted by name, files by path.
fn scan(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut classes = Vec::new();
    let entries = std::fs::read_dir(root)
        .with_context(|| format!("cannot list image folder {}", root.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", root.display()))?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        for f in std::fs::read_dir(entry.path())
            .with_context(|| format!("cannot list {}", entry.path().display()))?
        {
            let path = f?.path();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| e.to_ascii_lowercase());
            if ext.is_some_and(|e| EXTENSIONS.contains(&e.as_str())) {
                files.push(path);
            }
        }
        files.sort();
        if !files.is_empty() {
            classes.push((entry.file_name().to_string_lossy().into_owned(), files));
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
    Ok(classes)
}

/// Decodes one image file into the set's shape.
pub fn decode(path: &Path, shape: InputShape) -> Result<Vec<u8>> {
    let img =
        image::open(path).with_context(|| format!("cannot decode image {}", path.display()))?;
    Ok(to_shape(img, shape))
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

fn load_set(
    classes: &[(String, Vec<PathBuf>)],
    names: &[String],
    shape: InputShape,
) -> Result<ImageSet> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (name, files) in classes {
        let Some(label) = names.iter().position(|n| n == name) else {
            bail!("class folder `{name}` appears in the test set but not in the training set");
        };
        for f in files {
            images.extend(decode(f, shape)?);
            labels.push(label as u32);
        }
    }
    ImageSet::new(shape, images, labels)
}

/// Picks channels and size from the images: RGB if any image has colour.
fn infer_shape(classes: &[(String, Vec<PathBuf>)], image_size: usize) -> Result<InputShape> {
    let first = &classes[0].1[0];
    let img =
        image::open(first).with_context(|| format!("cannot decode image {}", first.display()))?;
    let mut color = false;
    for (_, files) in classes {
        for f in files {
            let c = image::ImageReader::open(f)
                .with_context(|| format!("cannot open image {}", f.display()))?
                .with_guessed_format()?
                .into_decoder()
                .map(|d| image::ImageDecoder::color_type(&d))
                .with_context(|| format!("cannot decode image {}", f.display()))?;
            if c.has_color() {
                color = true;
                break;
            }
        }
        if color {
            break;
        }
    }
    let (h, w) = if image_size > 0 {
        (image_size, image_size)
    } else {
        (img.height() as usize, img.width() as usize)
    };
    Ok(InputShape {
        channels: if color { 3 } else { 1 },
        height: h,
        width: w,
    })
}

/// Loads an image-folder dataset. Without `train/` and `test/` subfolders, `test_fraction` of
/// each class is held out as the test set, chosen by `seed`.
pub fn load(root: &Path, image_size: usize, test_fraction: f64, seed: u64) -> Result<RawDataset> {
    let (train_dir, test_dir) = (root.join("train"), root.join("test"));
    let origin = root.display().to_string();
    if train_dir.is_dir() && test_dir.is_dir() {
        let train_classes = scan(&train_dir)?;
        let test_classes = scan(&test_dir)?;
        let names: Vec<String> = train_classes.iter().map(|c| c.0.clone()).collect();
        let shape = infer_shape(&train_classes, image_size)?;
        let train = load_set(&train_classes, &names, shape)?;
        let test = load_set(&test_classes, &names, shape)?;
        return Ok(RawDataset {
            train,
            test,
            classes: names,
            origin,
            files: Vec::new(),
        });
    }
    let classes = scan(root)?;
    let names: Vec<String> = classes.iter().map(|c| c.0.clone()).collect();
    let shape = infer_shape(&classes, image_size)?;
    let all = load_set(&classes, &names, shape)?;
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
        classes: names,
        origin,
        files: Vec::new(),
    })
}
