//! Stratified splits of labelled indices, chosen by a seed: the validation split, a folder's test
//! split, the `train_limit` / `test_limit` subsets, and the images that keep their labels
//! (`labels_per_class`).

use rand::SeedableRng;
use rand::seq::SliceRandom;

/// Splits indices into (kept, held out), holding out `fraction` of each class, chosen by `seed`.
/// A class never loses all its images: at least one is kept. Both lists come back in ascending
/// order.
pub fn stratified_split(
    labels: &[u32],
    classes: usize,
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let (held, kept) = split_each_class(labels, 0..labels.len(), classes, seed ^ SPLIT_SALT, |n| {
        ((n as f64 * fraction).round() as usize).min(n.saturating_sub(1))
    });
    (kept, held)
}

/// Shuffles each class's `indices` by `seed` (one generator, class by class) and cuts each into
/// its first `first(class size)` and the rest; both lists come back in ascending order.
fn split_each_class(
    labels: &[u32],
    indices: impl IntoIterator<Item = usize>,
    classes: usize,
    seed: u64,
    first: impl Fn(usize) -> usize,
) -> (Vec<usize>, Vec<usize>) {
    let mut by_class = vec![Vec::new(); classes];
    for i in indices {
        by_class[labels[i] as usize].push(i);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut firsts, mut rests) = (Vec::new(), Vec::new());
    for mut idx in by_class {
        idx.shuffle(&mut rng);
        let cut = first(idx.len());
        firsts.extend_from_slice(&idx[..cut]);
        rests.extend_from_slice(&idx[cut..]);
    }
    firsts.sort_unstable();
    rests.sort_unstable();
    (firsts, rests)
}

/// Takes `n` of `indices` keeping class proportions (the first ones of each class, in order).
pub fn stratified_take(labels: &[u32], indices: &[usize], classes: usize, n: usize) -> Vec<usize> {
    let total = indices.len();
    let mut per_class = vec![0usize; classes];
    for &i in indices {
        per_class[labels[i] as usize] += 1;
    }
    let quota: Vec<usize> = per_class.iter().map(|&c| (c * n).div_ceil(total)).collect();
    let mut taken = vec![0usize; classes];
    let mut out = Vec::with_capacity(n);
    for &i in indices {
        let y = labels[i] as usize;
        if taken[y] < quota[y] && out.len() < n {
            taken[y] += 1;
            out.push(i);
        }
    }
    out
}

/// Splits `indices` into (labelled, unlabelled): `n` of each class keep their label (all of a
/// class with fewer), chosen by `seed`; both lists come back in ascending order.
pub fn labels_per_class(
    labels: &[u32],
    indices: &[usize],
    classes: usize,
    n: usize,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    split_each_class(
        labels,
        indices.iter().copied(),
        classes,
        seed ^ LABEL_SALT,
        |size| n.min(size),
    )
}

/// Mixed into the seed of which images keep their labels, so that it differs from the split.
const LABEL_SALT: u64 = 0x1ABE_15BE_C1A5_5002;

/// A constant mixed into the split seed so that the split and the epoch order differ.
const SPLIT_SALT: u64 = 0x5EED_5B11_7000_0001;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stratified_deterministic_and_disjoint() {
        let labels: Vec<u32> = (0..1000).map(|i| (i % 10) as u32).collect();
        let (a, b) = stratified_split(&labels, 10, 0.1, 7);
        assert_eq!(b.len(), 100);
        assert_eq!(a.len(), 900);
        assert_eq!(
            stratified_split(&labels, 10, 0.1, 7),
            (a.clone(), b.clone())
        );
        assert_ne!(stratified_split(&labels, 10, 0.1, 8).1, b);
        for c in 0..10 {
            assert_eq!(b.iter().filter(|&&i| labels[i] == c).count(), 10);
        }
        assert!(a.iter().all(|i| !b.contains(i)));
    }

    #[test]
    fn labels_per_class_keeps_n_of_each_class_chosen_by_the_seed() {
        // 50 images of class 0, 30 of class 1, 3 of class 2; every other index offered
        let labels: Vec<u32> = (0..166)
            .map(|i| match i / 2 {
                0..50 => 0,
                50..80 => 1,
                _ => 2,
            })
            .collect();
        let offered: Vec<usize> = (0..166).step_by(2).collect();
        let (kept, rest) = labels_per_class(&labels, &offered, 3, 10, 7);
        let count = |v: &[usize], c| v.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!(
            (count(&kept, 0), count(&kept, 1), count(&kept, 2)),
            (10, 10, 3)
        );
        assert_eq!(
            (count(&rest, 0), count(&rest, 1), count(&rest, 2)),
            (40, 20, 0)
        );
        let mut all = [kept.clone(), rest.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, offered, "a partition of the offered indices");
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            labels_per_class(&labels, &offered, 3, 10, 7),
            (kept.clone(), rest)
        );
        assert_ne!(labels_per_class(&labels, &offered, 3, 10, 8).0, kept);
        // the split's seed is not the labels' seed: the first shuffled images differ
        assert_ne!(kept, stratified_split(&labels, 3, 0.5, 7).1[..23].to_vec());
    }

    #[test]
    fn take_keeps_class_proportions() {
        // 60 images of class 0, 30 of class 1, 10 of class 2
        let labels: Vec<u32> = (0..100)
            .map(|i| {
                if i < 60 {
                    0
                } else if i < 90 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let all: Vec<usize> = (0..100).collect();
        let t = stratified_take(&labels, &all, 3, 20);
        assert_eq!(t.len(), 20);
        let count = |c| t.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!((count(0), count(1), count(2)), (12, 6, 2));
    }
}
