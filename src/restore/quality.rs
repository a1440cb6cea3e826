//! Image quality against the clean original: PSNR and SSIM (Wang et al., 2004), for pixels in
//! [0, 1].

use super::pixels::Image;

/// PSNR in dB is capped here for identical images (an infinite value would swamp a mean).
pub const PSNR_CAP: f64 = 100.0;

/// Peak signal-to-noise ratio, 10·log10(1 / MSE), in dB.
pub fn psnr(clean: &Image, other: &Image) -> f64 {
    assert_eq!(
        clean.shape, other.shape,
        "PSNR of images of different shapes"
    );
    let mse = clean
        .px
        .iter()
        .zip(&other.px)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum::<f64>()
        / clean.px.len().max(1) as f64;
    if mse <= 0.0 {
        PSNR_CAP
    } else {
        (10.0 * (1.0 / mse).log10()).min(PSNR_CAP)
    }
}

/// The SSIM window: a Gaussian of σ = 1.5 over 11 pixels (normalized), as in Wang et al.
fn window() -> [f64; 11] {
    let mut w = [0.0; 11];
    for (i, v) in w.iter_mut().enumerate() {
        let d = i as f64 - 5.0;
        *v = (-d * d / (2.0 * 1.5 * 1.5)).exp();
    }
    let sum: f64 = w.iter().sum();
    w.map(|v| v / sum)
}

/// The Gaussian-weighted local means of `plane` (`h × w`) over every window position that
/// fits ("valid"), `(h − 10) × (w − 10)`; with images smaller than the window, the window is
/// cut to the image and renormalized.
fn local_mean(plane: &[f64], h: usize, w: usize) -> (Vec<f64>, usize, usize) {
    let full = window();
    let (kh, kw) = (h.min(11), w.min(11));
    let cut = |k: usize| -> Vec<f64> {
        let start = (11 - k) / 2;
        let part = &full[start..start + k];
        let s: f64 = part.iter().sum();
        part.iter().map(|v| v / s).collect()
    };
    let (wy, wx) = (cut(kh), cut(kw));
    let (oh, ow) = (h - kh + 1, w - kw + 1);
    // rows first, then columns
    let mut rows = vec![0.0; h * ow];
    for y in 0..h {
        for x in 0..ow {
            rows[y * ow + x] = (0..kw).map(|i| wx[i] * plane[y * w + x + i]).sum();
        }
    }
    let mut out = vec![0.0; oh * ow];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = (0..kh).map(|i| wy[i] * rows[(y + i) * ow + x]).sum();
        }
    }
    (out, oh, ow)
}

/// Mean structural similarity, averaged over the valid window positions and the channels
/// (C1 = 0.01², C2 = 0.03², for a data range of 1).
pub fn ssim(clean: &Image, other: &Image) -> f64 {
    assert_eq!(
        clean.shape, other.shape,
        "SSIM of images of different shapes"
    );
    let (h, w) = (clean.shape.height, clean.shape.width);
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut total = 0.0;
    for c in 0..clean.shape.channels {
        let a: Vec<f64> = clean.plane(c).iter().map(|v| *v as f64).collect();
        let b: Vec<f64> = other.plane(c).iter().map(|v| *v as f64).collect();
        let prod =
            |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(x, y)| x * y).collect() };
        let (ma, _, _) = local_mean(&a, h, w);
        let (mb, _, _) = local_mean(&b, h, w);
        let (saa, _, _) = local_mean(&prod(&a, &a), h, w);
        let (sbb, _, _) = local_mean(&prod(&b, &b), h, w);
        let (sab, _, _) = local_mean(&prod(&a, &b), h, w);
        let n = ma.len();
        let mut sum = 0.0;
        for i in 0..n {
            let (mx, my) = (ma[i], mb[i]);
            let (vx, vy, cxy) = (saa[i] - mx * mx, sbb[i] - my * my, sab[i] - mx * my);
            sum += ((2.0 * mx * my + c1) * (2.0 * cxy + c2))
                / ((mx * mx + my * my + c1) * (vx + vy + c2));
        }
        total += sum / n as f64;
    }
    total / clean.shape.channels as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::InputShape;

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
    fn psnr_matches_a_hand_computed_value() {
        // errors 0.1 on two of four pixels: MSE = 0.005, PSNR = 10·log10(200) = 23.0103 dB
        let a = gray(2, 2, vec![0.0, 0.5, 1.0, 0.2]);
        let b = gray(2, 2, vec![0.1, 0.5, 0.9, 0.2]);
        assert!(
            (psnr(&a, &b) - 23.010_299_956_639_81).abs() < 1e-4,
            "{}",
            psnr(&a, &b)
        );
        assert_eq!(psnr(&a, &a), PSNR_CAP);
    }

    #[test]
    fn ssim_matches_hand_computed_values() {
        // identical images: 1
        let a = gray(12, 12, (0..144).map(|i| (i % 7) as f32 / 7.0).collect());
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-12);
        // constants 0.2 and 0.4: no variance, only the luminance term
        // (2·0.2·0.4 + C1) / (0.04 + 0.16 + C1) = (0.16 + 1e-4) / (0.2 + 1e-4)
        let x = gray(11, 11, vec![0.2; 121]);
        let y = gray(11, 11, vec![0.4; 121]);
        let want = (0.16 + 1e-4) / (0.2 + 1e-4);
        assert!((ssim(&x, &y) - want).abs() < 1e-6, "{}", ssim(&x, &y));
        // an 11×11 image against its negative, one window: luminance 1 (both means 0.5),
        // contrast-structure (2·cov + C2) / (2·var + C2) with cov = −var
        let p: Vec<f32> = (0..121)
            .map(|i| if i % 2 == 0 { 1.0 } else { 0.0 })
            .collect();
        let q: Vec<f32> = p.iter().map(|v| 1.0 - v).collect();
        let s = ssim(&gray(11, 11, p.clone()), &gray(11, 11, q));
        // weighted mean m and variance v of the checkerboard under the Gaussian window
        let w = window();
        let (mut m, mut sq) = (0.0, 0.0);
        for yy in 0..11 {
            for xx in 0..11 {
                let v = p[yy * 11 + xx] as f64;
                m += w[yy] * w[xx] * v;
                sq += w[yy] * w[xx] * v * v;
            }
        }
        let var = sq - m * m;
        let mn = 1.0 - m;
        let lum = (2.0 * m * mn + 1e-4) / (m * m + mn * mn + 1e-4);
        let want = lum * (-2.0 * var + 9e-4) / (2.0 * var + 9e-4);
        assert!((s - want).abs() < 1e-9, "{s} vs {want}");
        assert!(s < -0.9);
    }

    #[test]
    fn ssim_falls_with_noise() {
        let a = gray(
            16,
            16,
            (0..256).map(|i| ((i * 37) % 256) as f32 / 255.0).collect(),
        );
        let mut b = a.clone();
        b.px.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (*v + if i % 3 == 0 { 0.2 } else { -0.1 }).clamp(0.0, 1.0));
        let s = ssim(&a, &b);
        assert!(s < 0.99 && s > 0.0, "{s}");
    }
}
