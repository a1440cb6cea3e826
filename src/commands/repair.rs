//! The restoration commands on a user's image files: `fovea damage` writes damaged copies,
//! `fovea restore` repairs images with a trained restore run (and, with `--panel`, damages clean
//! images itself and shows clean | damaged | classical | restored side by side).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::runs::Opened;
use crate::data::InputShape;
use crate::data::batch::mix;
use crate::data::folder::{self, decode_native, save_png};
use crate::device::BackendKind;
use crate::fsio;
use crate::models::ModelConfig;
use crate::models::restore::{RestoreConfig, UNet};
use crate::report::plots;
use crate::restore::classical::{self, baseline_name};
use crate::restore::{DamageConfig, Damaged, HolePlace, Image, quality};
use crate::tasks::records::load_module;
use crate::tasks::restore::{network_input, to_images};

/// The file a hole's mask is written to and read from, next to the damaged image.
pub fn mask_path(image: &Path) -> PathBuf {
    let stem = image.file_stem().unwrap_or_default().to_string_lossy();
    image.with_file_name(format!("{stem}.mask.png"))
}

/// `--kind` of `fovea damage`: `noise[=σ]`, `salt-pepper[=share]`, `hole[=side]`,
/// `lowres[=k]`; several combine.
pub fn parse_kinds(kinds: &[String], hole_at: HolePlace) -> Result<DamageConfig> {
    let mut cfg = DamageConfig {
        hole_at,
        ..Default::default()
    };
    for k in kinds {
        let (name, value) = match k.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (k.as_str(), None),
        };
        let number = |default: f64| -> Result<f64> {
            match value {
                None => Ok(default),
                Some(v) => v
                    .parse::<f64>()
                    .with_context(|| format!("--kind {k}: `{v}` is not a number")),
            }
        };
        let whole = |default: f64| -> Result<usize> {
            let v = number(default)?;
            if v.fract() != 0.0 || v < 1.0 {
                bail!("--kind {k}: expected a whole number ≥ 1");
            }
            Ok(v as usize)
        };
        match name {
            "noise" => cfg.noise = number(0.3)?,
            "salt-pepper" => cfg.salt_pepper = number(0.05)?,
            "hole" => cfg.hole = whole(14.0)?,
            "lowres" => cfg.downscale = whole(2.0)?,
            other => bail!(
                "--kind {other}: expected noise[=σ], salt-pepper[=share], hole[=side] or lowres[=k]"
            ),
        }
    }
    cfg.validate().map_err(|e| anyhow::anyhow!("--kind: {e}"))?;
    Ok(cfg)
}

/// The `--out` folder, made; one that holds anything is refused (nothing is overwritten).
fn fresh_out(out: &Path) -> Result<()> {
    fsio::new_output_dir(out).context("--out")
}

fn read(path: &Path, channels: usize) -> Result<Image> {
    let (shape, bytes) = decode_native(path, channels)?;
    Image::from_bytes(shape, &bytes)
}

fn out_file(out: &Path, input: &Path, suffix: &str) -> PathBuf {
    let stem = input.file_stem().unwrap_or_default().to_string_lossy();
    out.join(format!("{stem}{suffix}.png"))
}

/// The channels a user's image is read with when nothing else decides: 3 for colour, 1 else.
fn own_channels(path: &Path) -> Result<usize> {
    let (_, _, has_color) = folder::header(path)?;
    Ok(if has_color { 3 } else { 1 })
}

/// `fovea damage`: writes each image damaged by `cfg` into `out` (same file stem, PNG), with
/// its mask as `<stem>.mask.png` when there is a hole. Returns the files written.
pub fn damage_files(
    cfg: &DamageConfig,
    images: &[PathBuf],
    out: &Path,
    seed: u64,
) -> Result<usize> {
    if images.is_empty() {
        bail!("no images given");
    }
    let mut damaged = Vec::new();
    for (i, path) in images.iter().enumerate() {
        let clean = read(path, own_channels(path)?)?;
        let d = cfg
            .apply(
                &clean,
                &mut ChaCha8Rng::seed_from_u64(mix(&[seed, i as u64])),
            )
            .with_context(|| format!("{}", path.display()))?;
        damaged.push(d);
    }
    fresh_out(out)?;
    let mut written = 0;
    for (path, d) in images.iter().zip(&damaged) {
        let file = out_file(out, path, "");
        save_png(&file, &d.image.to_bytes(), d.image.shape)?;
        written += 1;
        if let Some(mask) = &d.mask {
            let bytes: Vec<u8> = mask.iter().map(|m| (m * 255.0) as u8).collect();
            let shape = InputShape {
                channels: 1,
                ..d.image.shape
            };
            save_png(&mask_path(&file), &bytes, shape)?;
            written += 1;
        }
    }
    Ok(written)
}

/// A restore run's generator, ready to repair.
pub struct Restorer {
    pub cfg: RestoreConfig,
    g: UNet,
    channels: usize,
    seed: u64,
    device: Device,
    pub checkpoint: PathBuf,
}

impl Restorer {
    pub fn read(dir: &Path, which: &str, backend: Option<BackendKind>) -> Result<Self> {
        let pick = |m: &ModelConfig| match m {
            ModelConfig::Restore(cfg) => Some(cfg.clone()),
            _ => None,
        };
        let needs = "only a restore run repairs images";
        let (run, cfg) = Opened::open_as(dir, which, backend, pick, needs)?;
        let (g, _) = cfg.init(run.meta.shape, &run.device)?;
        let g = load_module(g, &run.parts, "generator")?.valid();
        Ok(Self {
            cfg,
            g,
            channels: run.meta.shape.channels,
            seed: run.config.seed,
            device: run.device,
            checkpoint: run.checkpoint,
        })
    }

    /// The repaired image of one damaged image (full size: k× the damaged one's).
    pub fn repair(&self, damaged: &Damaged) -> Result<Image> {
        let k = self.cfg.damage.downscale;
        let s = damaged.image.shape;
        let full = InputShape {
            channels: s.channels,
            height: s.height * k,
            width: s.width * k,
        };
        if full.height < 4 || full.width < 4 {
            bail!(
                "the model repairs images of at least 4 × 4 pixels at full size; this one would be {full}"
            );
        }
        let (input, image) =
            network_input(&self.cfg, std::slice::from_ref(damaged), full, &self.device);
        Ok(to_images(self.g.forward(input, image), full)?.remove(0))
    }
}

/// What `fovea restore` did with one file.
#[derive(Debug, serde::Serialize)]
pub struct Restored {
    pub file: String,
    pub written: String,
    /// With `--panel`: PSNR of damaged, classical and restored against the clean image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psnr: Option<[f64; 3]>,
}

/// `fovea restore`: each image repaired into `out` (same stem, PNG). Without `panel` the
/// images are damaged ones (a hole's mask is read from `<stem>.mask.png` beside each); with it
/// they are clean, damaged here as the run damages its test images, and `<stem>.panel.png`
/// shows clean | damaged | classical | restored.
pub fn restore_files(
    r: &Restorer,
    images: &[PathBuf],
    out: &Path,
    panel: bool,
) -> Result<Vec<Restored>> {
    if images.is_empty() {
        bail!("no images given");
    }
    let dcfg = &r.cfg.damage;
    let mut work = Vec::new();
    for (i, path) in images.iter().enumerate() {
        let img = read(path, r.channels)?;
        if panel {
            dcfg.damaged_shape(img.shape)
                .with_context(|| format!("{} (the model's damage)", path.display()))?;
            let d = dcfg.apply(
                &img,
                &mut ChaCha8Rng::seed_from_u64(mix(&[r.seed, i as u64, 43])),
            )?;
            work.push((path, Some(img), d));
        } else {
            let mask = if dcfg.hole > 0 {
                let mp = mask_path(path);
                if !mp.is_file() {
                    bail!(
                        "{}: this model fills holes and needs the hole's mask at {} (white = missing), \
                         as `fovea damage` writes it; or give clean images with --panel",
                        path.display(),
                        mp.display()
                    );
                }
                let m = read(&mp, 1)?;
                if (m.shape.height, m.shape.width) != (img.shape.height, img.shape.width) {
                    bail!(
                        "{}: the mask is {}×{}, the image {}×{}",
                        mp.display(),
                        m.shape.height,
                        m.shape.width,
                        img.shape.height,
                        img.shape.width
                    );
                }
                Some(
                    m.px.iter()
                        .map(|v| if *v > 0.5 { 1.0 } else { 0.0 })
                        .collect(),
                )
            } else {
                None
            };
            work.push((path, None, Damaged { image: img, mask }));
        }
    }
    let repaired: Vec<Image> = work
        .iter()
        .map(|(p, _, d)| r.repair(d).with_context(|| format!("{}", p.display())))
        .collect::<Result<_>>()?;
    fresh_out(out)?;
    let mut done = Vec::new();
    for ((path, clean, d), fixed) in work.iter().zip(&repaired) {
        let file = out_file(out, path, "");
        save_png(&file, &fixed.to_bytes(), fixed.shape)?;
        let mut psnr = None;
        if let Some(clean) = clean {
            let shown = classical::full_size(dcfg, d);
            let base = classical::baseline(dcfg, d);
            let scores = [
                quality::psnr(clean, &shown),
                quality::psnr(clean, &base),
                quality::psnr(clean, fixed),
            ];
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let row = vec![(
                stem.to_string(),
                vec![
                    clean.to_bytes(),
                    shown.to_bytes(),
                    base.to_bytes(),
                    fixed.to_bytes(),
                ],
            )];
            let scale = (112 / clean.shape.height.max(clean.shape.width)).clamp(1, 4) as u32;
            plots::image_grid(
                &out_file(out, path, ".panel"),
                &format!(
                    "clean | damaged {:.1} dB | {} {:.1} dB | restored {:.1} dB",
                    scores[0],
                    baseline_name(dcfg),
                    scores[1],
                    scores[2]
                ),
                &row,
                clean.shape,
                scale,
            )?;
            psnr = Some(scores);
        }
        done.push(Restored {
            file: path.display().to_string(),
            written: file.display().to_string(),
            psnr,
        });
    }
    Ok(done)
}
