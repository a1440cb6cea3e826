//! What the kernels' tests share: seeded inputs, a tensor's values, and the largest difference
//! between two results.

use burn::prelude::*;
use burn::tensor::TensorData;
use rand::{Rng, SeedableRng};

/// Values drawn uniformly from [lo, hi) by a seeded host generator: the tests leave the
/// device's random generator, which tests running in parallel share, alone.
pub(crate) fn noise<const D: usize>(
    shape: [usize; D],
    seed: u64,
    lo: f32,
    hi: f32,
    d: &Device,
) -> Tensor<D> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_data(TensorData::new(v, shape), d)
}

pub(crate) fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// The largest absolute difference between two equally long vectors of finite values (a
/// NaN, an infinity or a length mismatch fails the test).
pub(crate) fn worst(a: &[f32], b: &[f32]) -> f32 {
    crate::max_difference(a, b).unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts that each of `ours` lies within `tol` of the same entry of `theirs` (as `worst`
/// measures it); a failure names the result by `names` and the case by `case`.
pub(crate) fn assert_close(
    names: &[&str],
    ours: &[Vec<f32>],
    theirs: &[Vec<f32>],
    tol: f32,
    case: &str,
) {
    assert!(ours.len() == names.len() && theirs.len() == names.len());
    for ((what, a), b) in names.iter().zip(ours).zip(theirs) {
        let d = worst(a, b);
        assert!(d < tol, "{what}{case} differs by {d}");
    }
}
