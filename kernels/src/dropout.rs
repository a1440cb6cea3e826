//! Dropout whose mask is a hash of a seed and the value's index: one pass, the backward pass
//! computes the mask again instead of keeping it, and any number of threads draws the same mask.

use burn::backend::Dispatch;
use burn::prelude::*;

use crate::extension::{FlexKernels, FlexTensor, on_flex};
use crate::simd::elementwise;

/// `layer` (Burn's dropout) applied to `x`: in training on flex, as fovea's kernel (one pass, the
/// mask drawn from a seed that the device's random generator gives, so a step seeded alike draws
/// alike); anywhere else, Burn's own (which draws a random number per value through a generic
/// sampler).
pub fn dropout<const D: usize>(layer: &burn::nn::Dropout, x: Tensor<D>) -> Tensor<D> {
    let active = layer.training.is_enabled() && layer.prob > 0.0 && x.device().is_autodiff();
    if !active || !on_flex(&x) {
        return layer.forward(x);
    }
    // four 16-bit draws from the device's generator make the seed (its integers may be i32)
    let below = burn::tensor::Distribution::Uniform(0.0, 65536.0);
    let seed = Tensor::<1, Int>::random([4], below, &x.device())
        .into_data()
        .convert::<i64>()
        .iter::<i64>()
        .fold(0u64, |seed, part| (seed << 16) | part as u64);
    let out = <Dispatch as FlexKernels>::dropout(x.into_dispatch(), 1.0 - layer.prob, seed);
    Tensor::from_dispatch(out)
}

/// A 32-bit integer hash (the "lowbias32" mixer: xor-shifts and two multiplications, which
/// vectorize).
#[inline(always)]
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// Whether dropout keeps value `i` (probability `threshold`/2³²): the index hashed with the
/// seed's low half, hashed again with its high half, against the threshold (all 32-bit, so the
/// loop vectorizes).
#[inline(always)]
pub(crate) fn kept(seed: u64, i: usize, threshold: u32) -> bool {
    let once = mix32((i as u32) ^ seed as u32);
    mix32(once ^ (seed >> 32) as u32) < threshold
}

/// `x` with dropout's mask (see `kept`) applied: each kept value times 1/`keep`, the others 0.
/// Forward on the input, backward on the gradient.
pub(crate) fn dropout_mask(x: &FlexTensor, keep: f64, seed: u64) -> FlexTensor {
    // `keep` < 1 (dropout's probability is > 0), so the threshold fits 32 bits
    let threshold = (keep * 4294967296.0).round().min(u32::MAX as f64) as u32;
    let scale = (1.0 / keep) as f32;
    elementwise([x], |first, [v], out| {
        dropout_run(v, out, first, seed, threshold, scale)
    })
}

simd_fn! {
    /// `dropout_mask` of the run `v` that starts at index `first`, into `out`.
    fn dropout_run(v: &[f32], out: &mut [f32], first: usize, seed: u64, threshold: u32, scale: f32) {
        for (j, (o, &a)) in out.iter_mut().zip(v).enumerate() {
            // (a · mask) · scale, as Burn's dropout: a dropped ∞ or NaN gives NaN
            let mask = if kept(seed, first + j, threshold) { 1.0 } else { 0.0 };
            *o = a * mask * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn dropout_keeps_its_share_and_the_gradient_takes_the_same_mask() {
        let device = Device::flex().autodiff();
        let (keep, n) = (0.7, 64 * 3136);
        let x = noise([n], 15, 0.5, 1.5, &device).require_grad(); // no zeros: kept ≠ dropped
        let mix = noise([n], 16, 0.5, 1.5, &device);
        let run = |seed: u64| {
            let x = x.clone().detach().require_grad();
            let y = <Dispatch as FlexKernels>::dropout(x.clone().into_dispatch(), keep, seed);
            let y = Tensor::<1>::from_dispatch(y);
            let grads = (y.clone() * mix.clone()).sum().backward();
            (host(y), host(x.grad(&grads).unwrap()))
        };
        let (xs, ms) = (host(x.clone()), host(mix.clone()));
        let scale = (1.0 / keep) as f32;
        let (y, dx) = run(5);
        let mut kept = 0;
        for i in 0..n {
            if y[i] == 0.0 {
                assert_eq!(dx[i], 0.0, "value {i} dropped, its gradient not");
            } else {
                kept += 1;
                assert_eq!(
                    y[i],
                    xs[i] * scale,
                    "value {i} kept, but not scaled by 1/keep"
                );
                assert_eq!(dx[i], ms[i] * scale, "value {i} kept, its gradient not");
            }
        }
        // 200,704 draws: the kept share's standard deviation is ~0.001
        let share = kept as f64 / n as f64;
        assert!(
            (share - keep).abs() < 0.005,
            "kept {share}, expected {keep}"
        );
        assert_eq!(run(5).0, y, "one seed, one mask");
        let other = run(6).0;
        let differ = (0..n)
            .filter(|&i| (y[i] == 0.0) != (other[i] == 0.0))
            .count();
        assert!(
            differ > n / 4,
            "seeds 5 and 6 drop alike ({differ} of {n} differ)"
        );
        // the layer: fovea's kernel in training on flex, the identity in inference
        let layer = burn::nn::DropoutConfig::new(1.0 - keep).init();
        let y = host(dropout(&layer, x.clone()));
        let share = y.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        assert!((share - keep).abs() < 0.005, "the layer kept {share}");
        assert_eq!(host(dropout(&layer, x.clone().inner())), xs);
    }
}
