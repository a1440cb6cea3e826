//! Batching: the epoch order, normalization, augmentation, and a producer thread that prepares
//! the next batches while the model computes.
//!
//! Everything random here is derived from (seed, epoch, batch index), so a run resumed at any
//! batch sees exactly the data an uninterrupted run would have seen.

use std::sync::mpsc;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::AugmentConfig;
use super::set::ImageSet;

/// Per-channel mean and standard deviation of the training images, on the [0, 1] scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalizer {
    pub fn fit(set: &ImageSet) -> Self {
        let c = set.shape.channels;
        let plane = set.shape.height * set.shape.width;
        let (mut sum, mut sq) = (vec![0f64; c], vec![0f64; c]);
        for i in 0..set.len() {
            for (ch, px) in set.image(i).chunks_exact(plane).enumerate() {
                for &p in px {
                    let v = p as f64 / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
        let n = (set.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - m * m).max(0.0).sqrt().max(1e-3)) as f32)
            .collect();
        Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// Refuses a normalizer that does not fit images of `channels` channels, or whose values
    /// are not finite (a standard deviation must be positive).
    pub fn check(&self, channels: usize) -> anyhow::Result<()> {
        if self.mean.len() != channels || self.std.len() != channels {
            anyhow::bail!(
                "the normalizer has {} means and {} standard deviations for images of {channels} channel(s)",
                self.mean.len(),
                self.std.len()
            );
        }
        if let Some(v) = self.mean.iter().find(|v| !v.is_finite()) {
            anyhow::bail!("the normalizer has a mean of {v}");
        }
        if let Some(v) = self.std.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            anyhow::bail!("the normalizer has a standard deviation of {v}");
        }
        Ok(())
    }

    /// A lookup table per channel: byte value → normalized float.
    pub fn tables(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(m, s)| std::array::from_fn(|v| (v as f32 / 255.0 - m) / s))
            .collect()
    }
}

/// A batch ready for the device: images `[n, c, h, w]` as f32 and labels as i64.
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<i64>,
    /// Position of this batch within its epoch.
    pub index: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Mixes numbers into one seed (splitmix64 finalizer over each).
pub fn mix(parts: &[u64]) -> u64 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for &p in parts {
        let mut z = h ^ p.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}

/// One draw from the standard normal distribution (Box–Muller).
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The order in which the training images are visited in `epoch`.
pub fn epoch_order(len: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(&[
        seed,
        epoch as u64,
        1,
    ])));
    order
}

/// Number of batches an epoch of `len` images makes (the last one may be short).
pub fn batch_count(len: usize, batch_size: usize) -> usize {
    len.div_ceil(batch_size)
}

/// Fills a batch from `indices`. With `augment`, each image gets a random shift and/or flip
/// drawn from `rng`.
pub fn make_batch(
    set: &ImageSet,
    indices: &[usize],
    tables: &[[f32; 256]],
    augment: Option<(&AugmentConfig, &mut ChaCha8Rng)>,
    index: usize,
) -> Batch {
    let shape = set.shape;
    let (h, w) = (shape.height, shape.width);
    let plane = h * w;
    let mut images = vec![0f32; indices.len() * shape.pixels()];
    let mut labels = Vec::with_capacity(indices.len());
    let mut augment = augment;
    for (slot, &i) in indices.iter().enumerate() {
        labels.push(set.labels[i] as i64);
        let src = set.image(i);
        let dst = &mut images[slot * shape.pixels()..(slot + 1) * shape.pixels()];
        let (dx, dy, flip) = match augment.as_mut() {
            Some((cfg, rng)) => {
                let s = cfg.shift as i64;
                let dx = if s > 0 { rng.random_range(-s..=s) } else { 0 };
                let dy = if s > 0 { rng.random_range(-s..=s) } else { 0 };
                (dx, dy, cfg.flip && rng.random_bool(0.5))
            }
            None => (0, 0, false),
        };
        for (c, table) in tables.iter().enumerate() {
            let src = &src[c * plane..(c + 1) * plane];
            let dst = &mut dst[c * plane..(c + 1) * plane];
            if dx == 0 && dy == 0 && !flip {
                for (d, &p) in dst.iter_mut().zip(src) {
                    *d = table[p as usize];
                }
                continue;
            }
            // Shifted pixels come from outside the image: they take the value of a black pixel.
            let zero = table[0];
            for y in 0..h {
                let sy = y as i64 - dy;
                for x in 0..w {
                    let xx = if flip { w - 1 - x } else { x };
                    let sx = xx as i64 - dx;
                    dst[y * w + x] = if sy >= 0 && sy < h as i64 && sx >= 0 && sx < w as i64 {
                        table[src[sy as usize * w + sx as usize] as usize]
                    } else {
                        zero
                    };
                }
            }
        }
    }
    Batch {
        images,
        labels,
        index,
    }
}

/// Batches of `order[start_batch * batch_size..]`, prepared on a producer thread that stays up to
/// two batches ahead. Must be called inside `std::thread::scope`.
#[allow(clippy::too_many_arguments)]
pub fn spawn_batches<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    set: &'env ImageSet,
    order: Vec<usize>,
    start_batch: usize,
    batch_size: usize,
    normalizer: &Normalizer,
    augment: Option<AugmentConfig>,
    seed: u64,
    epoch: usize,
) -> mpsc::Receiver<Batch> {
    let (tx, rx) = mpsc::sync_channel(2);
    let tables = normalizer.tables();
    scope.spawn(move || {
        for (index, chunk) in order.chunks(batch_size).enumerate().skip(start_batch) {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(&[seed, epoch as u64, index as u64, 2]));
            let aug = augment.as_ref().map(|a| (a, &mut rng));
            if tx
                .send(make_batch(set, chunk, &tables, aug, index))
                .is_err()
            {
                return; // the consumer stopped early (interrupt or error)
            }
        }
    });
    rx
}

/// Batches of a whole set in order, without augmentation (evaluation).
pub fn eval_batches<'a>(
    set: &'a ImageSet,
    batch_size: usize,
    normalizer: &Normalizer,
) -> impl Iterator<Item = Batch> + 'a {
    let tables = normalizer.tables();
    let order: Vec<usize> = (0..set.len()).collect();
    (0..batch_count(set.len(), batch_size)).map(move |b| {
        let chunk = &order[b * batch_size..((b + 1) * batch_size).min(set.len())];
        make_batch(set, chunk, &tables, None, b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::set::InputShape;

    fn tiny() -> ImageSet {
        let shape = InputShape {
            channels: 1,
            height: 2,
            width: 3,
        };
        ImageSet::new(
            shape,
            vec![0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60],
            vec![0, 1],
        )
        .unwrap()
    }

    #[test]
    fn normalizer_makes_zero_mean_unit_std() {
        let set = tiny();
        let n = Normalizer::fit(&set);
        let b = eval_batches(&set, 8, &n).next().unwrap();
        let mean: f32 = b.images.iter().sum::<f32>() / b.images.len() as f32;
        let var: f32 =
            b.images.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / b.images.len() as f32;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
            "{mean} {var}"
        );
    }

    #[test]
    fn flip_and_shift_move_pixels() {
        let set = tiny(); // image 0: rows [0, 255, 0] and [0, 0, 255]
        let n = Normalizer {
            mean: vec![0.0],
            std: vec![1.0],
        }; // byte / 255
        let tables = n.tables();
        let bytes =
            |b: &Batch| -> Vec<u8> { b.images.iter().map(|v| (v * 255.0).round() as u8).collect() };
        let mut seen = std::collections::BTreeSet::new();
        for s in 0..64 {
            let mut rng = ChaCha8Rng::seed_from_u64(s);
            let cfg = AugmentConfig {
                shift: 1,
                flip: true,
            };
            seen.insert(bytes(&make_batch(
                &set,
                &[0],
                &tables,
                Some((&cfg, &mut rng)),
                0,
            )));
        }
        // the flip alone (no shift) and a shift one pixel right (no flip) both occur
        assert!(seen.contains(&vec![0, 255, 0, 255, 0, 0]), "{seen:?}");
        assert!(seen.contains(&vec![0, 0, 255, 0, 0, 0]), "{seen:?}");
        // no augmentation leaves the image as it is
        assert_eq!(
            bytes(&make_batch(&set, &[0], &tables, None, 0)),
            vec![0, 255, 0, 0, 0, 255]
        );
    }

    #[test]
    fn epoch_order_depends_on_seed_and_epoch_only() {
        assert_eq!(epoch_order(100, 1, 3), epoch_order(100, 1, 3));
        assert_ne!(epoch_order(100, 1, 3), epoch_order(100, 1, 4));
        assert_ne!(epoch_order(100, 1, 3), epoch_order(100, 2, 3));
    }
}
