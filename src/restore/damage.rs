//! Damage applied to clean images, each kind configurable and any of them combined: k× low
//! resolution (box downsampling), Gaussian noise, salt-and-pepper, and a missing square whose
//! mask is kept (the restoring network reads it as an extra channel). Everything random comes
//! from the generator passed in, so a seeded run damages the same images the same way.

use anyhow::{Result, bail};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::pixels::Image;
use crate::data::InputShape;
use crate::data::batch::standard_normal;

/// Where the missing square goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HolePlace {
    /// Centred in the image.
    Center,
    /// Anywhere it fits, drawn per image.
    Random,
}

/// `[model.damage]`: what is done to a clean image. Applied in this order: downscale, noise,
/// salt-and-pepper, hole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DamageConfig {
    /// Low resolution: each k × k block averaged into one pixel (1 = none). The image's height
    /// and width must be multiples of k.
    pub downscale: usize,
    /// Standard deviation of Gaussian noise added to pixels in [0, 1], then clamped (0 = none).
    pub noise: f64,
    /// Share of pixels set to black or white, half each (0 = none).
    pub salt_pepper: f64,
    /// Side in pixels of a square set to black and marked missing (0 = none).
    pub hole: usize,
    pub hole_at: HolePlace,
}

impl Default for DamageConfig {
    fn default() -> Self {
        Self {
            downscale: 1,
            noise: 0.0,
            salt_pepper: 0.0,
            hole: 0,
            hole_at: HolePlace::Center,
        }
    }
}

/// A damaged image: at full size, or k× smaller after a downscale; with the missing pixels'
/// mask (1 = missing, at the damaged image's size) when there is a hole.
#[derive(Debug, Clone, PartialEq)]
pub struct Damaged {
    pub image: Image,
    pub mask: Option<Vec<f32>>,
}

impl DamageConfig {
    /// Range checks; the error starts with the key inside `[model.damage]`.
    pub fn validate(&self) -> Result<(), String> {
        if self.downscale == 0 {
            return Err("damage.downscale must be at least 1 (1 = full resolution)".into());
        }
        if !(self.noise >= 0.0 && self.noise <= 10.0) {
            return Err(format!(
                "damage.noise must be in [0, 10] (got {})",
                self.noise
            ));
        }
        if !(0.0..=1.0).contains(&self.salt_pepper) {
            return Err(format!(
                "damage.salt_pepper must be in [0, 1] (got {})",
                self.salt_pepper
            ));
        }
        if self.is_none() {
            return Err(
                "damage: nothing to repair; set downscale > 1, noise, salt_pepper or hole".into(),
            );
        }
        Ok(())
    }

    pub fn is_none(&self) -> bool {
        self.downscale == 1 && self.noise == 0.0 && self.salt_pepper == 0.0 && self.hole == 0
    }

    /// The shape of a damaged image of `clean` shape, or why this damage cannot apply to it.
    pub fn damaged_shape(&self, clean: InputShape) -> Result<InputShape> {
        let k = self.downscale;
        if !clean.height.is_multiple_of(k) || !clean.width.is_multiple_of(k) {
            bail!(
                "damage.downscale = {k} needs images whose height and width are multiples of {k}; \
                 these are {clean}"
            );
        }
        let small = InputShape {
            channels: clean.channels,
            height: clean.height / k,
            width: clean.width / k,
        };
        if self.hole > small.height || self.hole > small.width {
            bail!(
                "damage.hole = {} does not fit in images of {small} (after the downscale)",
                self.hole
            );
        }
        Ok(small)
    }

    /// Damages `clean` with randomness from `rng`.
    pub fn apply(&self, clean: &Image, rng: &mut impl Rng) -> Result<Damaged> {
        let shape = self.damaged_shape(clean.shape)?;
        let mut image = downscale(clean, self.downscale);
        if self.noise > 0.0 {
            for v in &mut image.px {
                *v = (*v + (self.noise * standard_normal(rng)) as f32).clamp(0.0, 1.0);
            }
        }
        if self.salt_pepper > 0.0 {
            let plane = shape.height * shape.width;
            for i in 0..plane {
                if rng.random_bool(self.salt_pepper) {
                    let v = if rng.random_bool(0.5) { 1.0 } else { 0.0 };
                    for c in 0..shape.channels {
                        image.px[c * plane + i] = v;
                    }
                }
            }
        }
        let mask = (self.hole > 0).then(|| {
            let (top, left) = match self.hole_at {
                HolePlace::Center => (
                    (shape.height - self.hole) / 2,
                    (shape.width - self.hole) / 2,
                ),
                HolePlace::Random => (
                    rng.random_range(0..=shape.height - self.hole),
                    rng.random_range(0..=shape.width - self.hole),
                ),
            };
            let mut mask = vec![0f32; shape.height * shape.width];
            for y in top..top + self.hole {
                for x in left..left + self.hole {
                    mask[y * shape.width + x] = 1.0;
                }
            }
            for c in 0..shape.channels {
                for (v, m) in image.plane_mut(c).iter_mut().zip(&mask) {
                    if *m > 0.0 {
                        *v = 0.0;
                    }
                }
            }
            mask
        });
        Ok(Damaged { image, mask })
    }
}

/// Each `k × k` block averaged into one pixel (height and width multiples of `k`).
pub fn downscale(img: &Image, k: usize) -> Image {
    if k == 1 {
        return img.clone();
    }
    let s = img.shape;
    let shape = InputShape {
        channels: s.channels,
        height: s.height / k,
        width: s.width / k,
    };
    let mut out = Image::zeros(shape);
    let area = (k * k) as f32;
    for c in 0..s.channels {
        let src = img.plane(c);
        let dst = out.plane_mut(c);
        for y in 0..shape.height {
            for x in 0..shape.width {
                let mut sum = 0.0;
                for dy in 0..k {
                    for dx in 0..k {
                        sum += src[(y * k + dy) * s.width + x * k + dx];
                    }
                }
                dst[y * shape.width + x] = sum / area;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn gray(h: usize, w: usize, f: impl Fn(usize, usize) -> f32) -> Image {
        let shape = InputShape {
            channels: 1,
            height: h,
            width: w,
        };
        let px = (0..h * w).map(|i| f(i / w, i % w)).collect();
        Image::new(shape, px).unwrap()
    }

    #[test]
    fn downscale_averages_blocks_and_checks_the_size() {
        let img = gray(4, 4, |y, x| (y * 4 + x) as f32);
        let small = downscale(&img, 2);
        assert_eq!((small.shape.height, small.shape.width), (2, 2));
        // block (0,0) holds 0, 1, 4, 5
        assert_eq!(small.px, vec![2.5, 4.5, 10.5, 12.5]);
        let cfg = DamageConfig {
            downscale: 3,
            ..Default::default()
        };
        let e = cfg.damaged_shape(img.shape).unwrap_err();
        assert!(e.to_string().contains("multiples of 3"), "{e}");
    }

    #[test]
    fn noise_is_seeded_clamped_and_of_the_asked_strength() {
        let img = gray(32, 32, |_, _| 0.5);
        let cfg = DamageConfig {
            noise: 0.1,
            ..Default::default()
        };
        let a = cfg.apply(&img, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let b = cfg.apply(&img, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let c = cfg.apply(&img, &mut ChaCha8Rng::seed_from_u64(4)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.mask.is_none());
        let n = a.image.px.len() as f64;
        let var = a
            .image
            .px
            .iter()
            .map(|v| (*v as f64 - 0.5).powi(2))
            .sum::<f64>()
            / n;
        assert!((var.sqrt() - 0.1).abs() < 0.01, "std {}", var.sqrt());
        let strong = DamageConfig {
            noise: 3.0,
            ..Default::default()
        };
        let s = strong
            .apply(&img, &mut ChaCha8Rng::seed_from_u64(3))
            .unwrap();
        assert!(s.image.px.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn salt_and_pepper_sets_about_the_asked_share_to_black_or_white() {
        let img = gray(50, 50, |_, _| 0.5);
        let cfg = DamageConfig {
            salt_pepper: 0.2,
            ..Default::default()
        };
        let d = cfg.apply(&img, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let (black, white) = (
            d.image.px.iter().filter(|v| **v == 0.0).count(),
            d.image.px.iter().filter(|v| **v == 1.0).count(),
        );
        let share = (black + white) as f64 / 2500.0;
        assert!((share - 0.2).abs() < 0.03, "{share}");
        assert!(black > 150 && white > 150, "{black} {white}");
    }

    #[test]
    fn the_hole_is_black_and_its_mask_marks_exactly_it() {
        let img = gray(8, 8, |_, _| 1.0);
        let cfg = DamageConfig {
            hole: 4,
            ..Default::default()
        };
        let d = cfg.apply(&img, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let mask = d.mask.unwrap();
        assert_eq!(mask.iter().sum::<f32>(), 16.0);
        for y in 0..8 {
            for x in 0..8 {
                let inside = (2..6).contains(&y) && (2..6).contains(&x);
                assert_eq!(mask[y * 8 + x], if inside { 1.0 } else { 0.0 });
                assert_eq!(d.image.px[y * 8 + x], if inside { 0.0 } else { 1.0 });
            }
        }
        // a random place: the same for the same seed, inside the image, 16 pixels
        let cfg = DamageConfig {
            hole: 4,
            hole_at: HolePlace::Random,
            ..Default::default()
        };
        let places: Vec<Vec<f32>> = (0..6)
            .map(|s| {
                let d = cfg.apply(&img, &mut ChaCha8Rng::seed_from_u64(s)).unwrap();
                d.mask.unwrap()
            })
            .collect();
        assert!(places.iter().all(|m| m.iter().sum::<f32>() == 16.0));
        assert!(places.windows(2).any(|w| w[0] != w[1]));
        let again = cfg.apply(&img, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        assert_eq!(again.mask.unwrap(), places[0]);
    }

    #[test]
    fn damages_combine_after_the_downscale() {
        let img = gray(8, 8, |_, _| 0.5);
        let cfg = DamageConfig {
            downscale: 2,
            hole: 2,
            noise: 0.05,
            ..Default::default()
        };
        let d = cfg.apply(&img, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert_eq!((d.image.shape.height, d.image.shape.width), (4, 4));
        assert_eq!(d.mask.as_ref().unwrap().len(), 16);
        assert_eq!(d.image.px[5], 0.0); // (1,1) is in the centred 2×2 hole
        let too_big = DamageConfig {
            downscale: 2,
            hole: 5,
            ..Default::default()
        };
        assert!(
            too_big
                .apply(&img, &mut ChaCha8Rng::seed_from_u64(1))
                .is_err()
        );
        assert!(DamageConfig::default().validate().is_err());
    }
}
