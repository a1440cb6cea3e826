//! The classical repairs a user would reach for, the baselines a restoring network must beat:
//! bicubic upscaling (Keys' cubic convolution, a = −0.5) for low resolution, a 3 × 3 median
//! filter for noise, and harmonic (diffusion) filling for a missing region.

use super::damage::{DamageConfig, Damaged};
use super::pixels::Image;
use crate::data::InputShape;

/// Keys' cubic convolution kernel with a = −0.5 (what bicubic resizing in PIL and OpenCV uses).
fn cubic(t: f64) -> f64 {
    let (a, t) = (-0.5, t.abs());
    if t <= 1.0 {
        (a + 2.0) * t.powi(3) - (a + 3.0) * t.powi(2) + 1.0
    } else if t < 2.0 {
        a * t.powi(3) - 5.0 * a * t.powi(2) + 8.0 * a * t - 4.0 * a
    } else {
        0.0
    }
}

/// One axis of a bicubic resize by `k`: for each output position, four source indices (clamped
/// to the edge) and their weights; output pixel centres map to source (o + ½) / k − ½.
fn taps(n: usize, k: usize) -> Vec<([usize; 4], [f64; 4])> {
    (0..n * k)
        .map(|o| {
            let s = (o as f64 + 0.5) / k as f64 - 0.5;
            let base = s.floor();
            let mut idx = [0usize; 4];
            let mut w = [0f64; 4];
            for j in 0..4 {
                let p = base + j as f64 - 1.0;
                idx[j] = p.clamp(0.0, (n - 1) as f64) as usize;
                w[j] = cubic(s - p);
            }
            let sum: f64 = w.iter().sum();
            (idx, w.map(|v| v / sum))
        })
        .collect()
}

/// Bicubic upscaling by an integer factor `k`, clamped to [0, 1].
pub fn bicubic_up(img: &Image, k: usize) -> Image {
    if k == 1 {
        return img.clone();
    }
    let s = img.shape;
    let shape = InputShape {
        channels: s.channels,
        height: s.height * k,
        width: s.width * k,
    };
    let (ty, tx) = (taps(s.height, k), taps(s.width, k));
    let mut out = Image::zeros(shape);
    for c in 0..s.channels {
        let src = img.plane(c);
        // columns first: [h, W]
        let mut rows = vec![0f64; s.height * shape.width];
        for y in 0..s.height {
            for (x, (idx, w)) in tx.iter().enumerate() {
                rows[y * shape.width + x] = (0..4)
                    .map(|j| w[j] * src[y * s.width + idx[j]] as f64)
                    .sum();
            }
        }
        let dst = out.plane_mut(c);
        for (y, (idx, w)) in ty.iter().enumerate() {
            for x in 0..shape.width {
                let v: f64 = (0..4).map(|j| w[j] * rows[idx[j] * shape.width + x]).sum();
                dst[y * shape.width + x] = v.clamp(0.0, 1.0) as f32;
            }
        }
    }
    out
}

/// The 3 × 3 median of each pixel's neighbourhood (edges replicated), per channel.
pub fn median3(img: &Image) -> Image {
    let s = img.shape;
    let (h, w) = (s.height as i64, s.width as i64);
    let mut out = Image::zeros(s);
    for c in 0..s.channels {
        let src = img.plane(c);
        let dst = out.plane_mut(c);
        for y in 0..h {
            for x in 0..w {
                let mut v = [0f32; 9];
                let mut n = 0;
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (yy, xx) = ((y + dy).clamp(0, h - 1), (x + dx).clamp(0, w - 1));
                        v[n] = src[(yy * w + xx) as usize];
                        n += 1;
                    }
                }
                v.sort_by(f32::total_cmp);
                dst[(y * w + x) as usize] = v[4];
            }
        }
    }
    out
}

/// Fills the pixels where `mask` is 1 with the harmonic function that matches the known pixels
/// around them: each missing pixel becomes the mean of its neighbours inside the image (Laplace's
/// equation), solved by successive over-relaxation from the mean of the known border.
pub fn harmonic_fill(img: &Image, mask: &[f32]) -> Image {
    let s = img.shape;
    let (h, w) = (s.height, s.width);
    assert_eq!(mask.len(), h * w, "one mask value per pixel");
    let missing: Vec<usize> = (0..h * w).filter(|&i| mask[i] > 0.5).collect();
    let mut out = img.clone();
    if missing.is_empty() || missing.len() == h * w {
        return out;
    }
    let neighbours = |i: usize| {
        let (y, x) = (i / w, i % w);
        let mut n = Vec::with_capacity(4);
        if y > 0 {
            n.push(i - w);
        }
        if y + 1 < h {
            n.push(i + w);
        }
        if x > 0 {
            n.push(i - 1);
        }
        if x + 1 < w {
            n.push(i + 1);
        }
        n
    };
    let links: Vec<Vec<usize>> = missing.iter().map(|&i| neighbours(i)).collect();
    let omega = 1.8;
    for c in 0..s.channels {
        let p = out.plane_mut(c);
        let border: Vec<f32> = (0..h * w)
            .filter(|&i| mask[i] <= 0.5 && neighbours(i).iter().any(|&j| mask[j] > 0.5))
            .map(|i| p[i])
            .collect();
        let start = border.iter().sum::<f32>() / border.len().max(1) as f32;
        for &i in &missing {
            p[i] = start;
        }
        for _ in 0..5000 {
            let mut change = 0f32;
            for (&i, n) in missing.iter().zip(&links) {
                let mean = n.iter().map(|&j| p[j]).sum::<f32>() / n.len() as f32;
                let next = p[i] + omega * (mean - p[i]);
                change = change.max((next - p[i]).abs());
                p[i] = next;
            }
            if change < 1e-6 {
                break;
            }
        }
        for &i in &missing {
            p[i] = p[i].clamp(0.0, 1.0);
        }
    }
    out
}

/// What a damaged image looks like at full size before any repair: a low-resolution image's
/// pixels repeated (nearest neighbour), otherwise the image itself.
pub fn full_size(cfg: &DamageConfig, damaged: &Damaged) -> Image {
    damaged.image.nearest_up(cfg.downscale)
}

/// The mask at full size (nearest neighbour), if there is one.
pub fn full_mask(cfg: &DamageConfig, damaged: &Damaged, shape: InputShape) -> Option<Vec<f32>> {
    let k = cfg.downscale;
    damaged.mask.as_ref().map(|m| {
        let sw = shape.width / k;
        (0..shape.height * shape.width)
            .map(|i| m[(i / shape.width / k) * sw + (i % shape.width) / k])
            .collect()
    })
}

/// The damaged image at full size with its hole filled: bicubic upscaling, then harmonic filling.
/// What the restoring network starts from (it learns a correction to it).
pub fn prefill(cfg: &DamageConfig, damaged: &Damaged) -> Image {
    let img = bicubic_up(&damaged.image, cfg.downscale);
    match full_mask(cfg, damaged, img.shape) {
        Some(mask) => harmonic_fill(&img, &mask),
        None => img,
    }
}

/// The classical repair of every damage in `cfg`, in turn: bicubic upscaling, harmonic filling of
/// the hole, then the median filter against noise or salt-and-pepper.
pub fn baseline(cfg: &DamageConfig, damaged: &Damaged) -> Image {
    finish(cfg, &prefill(cfg, damaged))
}

/// The baseline's last step on a `prefill`ed image: the median filter when there is noise or
/// salt-and-pepper, else the image as it is.
pub fn finish(cfg: &DamageConfig, prefilled: &Image) -> Image {
    if cfg.noise > 0.0 || cfg.salt_pepper > 0.0 {
        median3(prefilled)
    } else {
        prefilled.clone()
    }
}

/// What the baseline is called in tables and panels.
pub fn baseline_name(cfg: &DamageConfig) -> String {
    let mut parts = Vec::new();
    if cfg.downscale > 1 {
        parts.push("bicubic");
    }
    if cfg.hole > 0 {
        parts.push("harmonic fill");
    }
    if cfg.noise > 0.0 || cfg.salt_pepper > 0.0 {
        parts.push("median 3×3");
    }
    parts.join(" + ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(h: usize, w: usize, px: Vec<f32>) -> Image {
        Image::new(
            InputShape {
                channels: 1,
                height: h,
                width: w,
            },
            px,
        )
        .unwrap()
    }

    #[test]
    fn bicubic_keeps_constants_and_linear_ramps_inside() {
        let c = bicubic_up(&gray(3, 3, vec![0.4; 9]), 2);
        assert_eq!((c.shape.height, c.shape.width), (6, 6));
        assert!(c.px.iter().all(|v| (v - 0.4).abs() < 1e-6));
        // a ramp 0, 0.1, …, 0.7 along x: away from the clamped edges, cubic convolution
        // reproduces it exactly at the output positions (o + ½)/2 − ½
        let ramp = gray(1, 8, (0..8).map(|x| x as f32 * 0.1).collect());
        let up = bicubic_up(&ramp, 2);
        for o in 4..12 {
            let want = ((o as f64 + 0.5) / 2.0 - 0.5) * 0.1;
            assert!((up.px[o] as f64 - want).abs() < 1e-6, "{o}: {}", up.px[o]);
        }
    }

    #[test]
    fn the_median_removes_an_isolated_speck() {
        let mut px = vec![0.3; 25];
        px[12] = 1.0;
        px[0] = 0.0;
        let m = median3(&gray(5, 5, px));
        assert!(m.px.iter().all(|v| (*v - 0.3).abs() < 1e-7), "{:?}", m.px);
    }

    #[test]
    fn harmonic_fill_solves_laplace_in_the_hole() {
        // left half 0, right half 1 around a hole in the middle columns: the harmonic fill of a
        // 1-D problem is the straight line between the known columns
        let (h, w) = (5, 6);
        let px: Vec<f32> = (0..h * w)
            .map(|i| if i % w < 3 { 0.0 } else { 1.0 })
            .collect();
        let mask: Vec<f32> = (0..h * w)
            .map(|i| if (1..5).contains(&(i % w)) { 1.0 } else { 0.0 })
            .collect();
        let f = harmonic_fill(&gray(h, w, px), &mask);
        for y in 0..h {
            for x in 0..w {
                let want = x as f32 / 5.0;
                assert!(
                    (f.px[y * w + x] - want).abs() < 1e-4,
                    "({y},{x}) {}",
                    f.px[y * w + x]
                );
            }
        }
        // a constant surround fills with the constant
        let mut mask = vec![0.0; 49];
        for i in [16, 17, 18, 23, 24, 25, 30, 31, 32] {
            mask[i] = 1.0;
        }
        let mut px = vec![0.7; 49];
        for i in [16, 17, 18, 23, 24, 25, 30, 31, 32] {
            px[i] = 0.0;
        }
        let f = harmonic_fill(&gray(7, 7, px), &mask);
        assert!(f.px.iter().all(|v| (v - 0.7).abs() < 1e-4));
    }

    #[test]
    fn the_baseline_chains_the_repairs_the_damage_needs() {
        let cfg = DamageConfig {
            downscale: 2,
            ..Default::default()
        };
        let d = Damaged {
            image: gray(2, 2, vec![0.5; 4]),
            mask: None,
        };
        let b = baseline(&cfg, &d);
        assert_eq!((b.shape.height, b.shape.width), (4, 4));
        assert_eq!(baseline_name(&cfg), "bicubic");
        let cfg = DamageConfig {
            noise: 0.2,
            hole: 2,
            ..Default::default()
        };
        assert_eq!(baseline_name(&cfg), "harmonic fill + median 3×3");
    }
}
