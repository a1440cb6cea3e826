//! What every kernel's inner loops use: `simd_fn!` (a function compiled for AVX2 + FMA as well
//! and run so where the CPU has them), a tensor's values, output buffers left unwritten until a
//! kernel fills them, lane-wise element passes and vectorized sums.

use std::mem::MaybeUninit;

use crate::extension::FlexTensor;

/// `simd_fn! { fn name(args) -> R { body } }` defines `name` with its body compiled twice: for
/// AVX2 + FMA, run where the CPU has them (detected once, then a cached flag), and as built, for
/// baseline x86-64 (SSE2, where a loop of 32-bit multiplications, for one, does not vectorize).
/// The body is an `#[inline(always)]` function inlined into a `#[target_feature]` one, so the
/// features reach all of it (a closure handed to such a function may stay a call of its own and
/// get none). Rust never contracts `a·b + c` into a fused multiply-add: both give the same bits.
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` is compiled for (checked above)
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// The values of a flex f32 tensor in row-major order, and its dims.
pub(crate) fn values(t: &FlexTensor) -> (Vec<usize>, std::borrow::Cow<'_, [f32]>) {
    let dims = t.layout().shape().to_vec();
    // `as_slice` is `None` for a non-contiguous layout
    match t.as_slice::<f32>() {
        Some(s) => (dims, std::borrow::Cow::Borrowed(s)),
        None => {
            let c = t.to_contiguous();
            let v = c
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor")
                .to_vec();
            (dims, std::borrow::Cow::Owned(v))
        }
    }
}

/// Values per task of the element-wise passes (`elementwise`).
const CHUNK: usize = 1 << 14;

/// An element-wise pass over tensors of one shape, in tasks of `CHUNK` values side by side: a
/// new tensor of `ins[0]`'s shape whose values `run(first, inputs, out)` writes run by run,
/// `inputs` the inputs' values from index `first` on, as long as `out`.
pub(crate) fn elementwise<const K: usize>(
    ins: [&FlexTensor; K],
    run: impl Fn(usize, [&[f32]; K], &mut [f32]) + Sync,
) -> FlexTensor {
    use rayon::prelude::*;
    let vals = ins.map(values);
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
            // zeroed here, by the task, in cache (a zeroed allocation would be one pass over the
            // whole output on the calling thread while the others wait)
            let o = zeroed(o);
            let first = c * CHUNK;
            run(
                first,
                std::array::from_fn(|k| &vals[k].1[first..first + o.len()]),
                o,
            );
        });
    };
    // SAFETY: the chunks cover the output, and `zeroed` writes every value of each
    let out = unsafe { written(vals[0].1.len(), fill) };
    FlexTensor::from_data(burn::tensor::TensorData::new(out, vals[0].0.clone()))
}

/// `v` with every value set to zero, as initialized values.
fn zeroed(v: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    v.fill(MaybeUninit::new(0.0));
    // SAFETY: every value was just written, and `MaybeUninit<f32>` has `f32`'s layout
    unsafe { &mut *(v as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Room for a kernel's output of `n` values, handed to `fill` unwritten: `vec![0.0; n]` would
/// first zero it, a pass over megabytes (the first block's tensors are 6.4 MB) as long as many
/// of the kernels' own.
///
/// # Safety
/// `fill` must write every one of the `n` values.
pub(crate) unsafe fn written<T: Copy>(
    n: usize,
    fill: impl FnOnce(&mut [MaybeUninit<T>]),
) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the capacity is at least `n`, and `fill` wrote the first `n` values (the caller's
    // promise)
    unsafe { v.set_len(n) };
    v
}

/// `outs[m][t] = f([ins[0][t], …, ins[K − 1][t]])[m]` for every `t` below the outputs' (equal)
/// length, in runs of `LANES` that the compiler turns into one SIMD operation each, then the
/// rest one by one. (A plain loop is vectorized in unrolled steps of several registers and
/// leaves a scalar tail: 24 of a 56-long transform row.)
#[inline(always)]
pub(crate) fn lanewise<const K: usize, const M: usize>(
    ins: [&[f32]; K],
    outs: [&mut [f32]; M],
    f: impl Fn([f32; K]) -> [f32; M],
) {
    let n = outs[0].len();
    let ins = ins.map(|s| &s[..n]);
    let mut outs = outs.map(|s| &mut s[..n]);
    let full = n - n % LANES;
    for t in (0..full).step_by(LANES) {
        let x: [&[f32; LANES]; K] =
            std::array::from_fn(|k| ins[k][t..t + LANES].try_into().expect("LANES values"));
        let mut y = [[0f32; LANES]; M];
        for l in 0..LANES {
            let r = f(std::array::from_fn(|k| x[k][l]));
            for (ym, rm) in y.iter_mut().zip(r) {
                ym[l] = rm;
            }
        }
        for (out, ym) in outs.iter_mut().zip(&y) {
            out[t..t + LANES].copy_from_slice(ym);
        }
    }
    for t in full..n {
        let r = f(std::array::from_fn(|k| ins[k][t]));
        for (out, rm) in outs.iter_mut().zip(r) {
            out[t] = rm;
        }
    }
}

/// Lanes of the partial sums below: independent f32 accumulators the compiler keeps in one
/// SIMD register, so a sum is not one long chain of dependent additions.
const LANES: usize = 8;

/// Σ f(a) over `xs`: `LANES` f32 partial sums (each of at most a run's length / `LANES`
/// terms), added up in f64.
#[inline(always)]
pub(crate) fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    let tail: f64 = rest.iter().map(|&v| f(v) as f64).sum();
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail
}

/// (Σ d, Σ d·f(a)) over two equally long runs, as `lane_sum` does.
#[inline(always)]
pub(crate) fn lane_sums2(xs: &[f32], ds: &[f32], f: impl Fn(f32) -> f32) -> (f64, f64) {
    let (mut s1, mut s2) = ([0f32; LANES], [0f32; LANES]);
    let (xc, dc) = (xs.chunks_exact(LANES), ds.chunks_exact(LANES));
    let (xr, dr) = (xc.remainder(), dc.remainder());
    for (x, d) in xc.zip(dc) {
        for k in 0..LANES {
            s1[k] += d[k];
            s2[k] += d[k] * f(x[k]);
        }
    }
    let mut t = (
        s1.iter().map(|&a| a as f64).sum::<f64>(),
        s2.iter().map(|&a| a as f64).sum::<f64>(),
    );
    for (&x, &d) in xr.iter().zip(dr) {
        t.0 += d as f64;
        t.1 += (d * f(x)) as f64;
    }
    t
}

/// e^x for x ≤ 0, branch-free (so a loop of it vectorizes, where libm's `expf` is a call per
/// value): x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by a degree-7 polynomial (Cephes' `expf`
/// coefficients), 2ⁿ put in the exponent bits. Within 2 ulp of `f32::exp`; below −87 (where
/// e^x leaves the normal range) it returns e^−87.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, the first exact in few bits, so that n·ln 2 is subtracted exactly
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer, held in the low mantissa bits
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = ((((1.987_569_2e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0;
    // n is in [−126, 0]: 2ⁿ·y stays a normal number
    f32::from_bits((y.to_bits() as i32).wrapping_add((n as i32) << 23) as u32)
}

/// The logistic sigmoid 1/(1 + e^−x), as Burn's flex computes it (1/(1 + e^−x) for x ≥ 0,
/// e^x/(1 + e^x) below) with `exp_nonpositive` for e^−|x|: within 2e-7 of it.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 { s } else { e * s }
}

/// tanh x, branch-free: for |x| < 0.625 an odd polynomial (Cephes' `tanhf` coefficients),
/// above (1 − e^−2|x|)/(1 + e^−2|x|) with `exp_nonpositive`, the sign put back. Within 2e-7
/// of `f32::tanh`.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the coefficients as published
pub(crate) fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let small =
        ((((-5.704_988_7e-3 * z + 2.063_908_9e-2) * z - 5.373_971_6e-2) * z + 0.133_314_42) * z
            - 0.333_332_82)
            * z
            * x
            + x;
    let e = exp_nonpositive(-2.0 * a);
    let large = ((1.0 - e) / (1.0 + e)).copysign(x);
    if a < 0.625 { small } else { large }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free functions against the standard library's, over [−100, 100] in steps of
    /// 1/1024 and around 0.
    #[test]
    fn exp_sigmoid_and_tanh_agree_with_the_standard_library() {
        let xs = (-102_400..=102_400).map(|k| k as f32 / 1024.0);
        let xs = xs.chain((-200..200).map(|k| k as f32 * 1e-6));
        let (mut exp_rel, mut sig, mut th) = (0f64, 0f32, 0f32);
        for x in xs {
            if (-87.0..=0.0).contains(&x) {
                let (a, b) = (exp_nonpositive(x) as f64, (x as f64).exp());
                exp_rel = exp_rel.max((a - b).abs() / b);
            }
            let exact = 1.0 / (1.0 + (-(x as f64)).exp());
            sig = sig.max((sigmoid(x) - exact as f32).abs());
            th = th.max((tanh(x) - (x as f64).tanh() as f32).abs());
            assert_eq!(tanh(x).signum(), x.signum(), "tanh({x}) has the wrong sign");
        }
        assert!(exp_rel < 2.5e-7, "exp: relative error {exp_rel}");
        assert!(sig < 2e-7, "sigmoid: error {sig}");
        assert!(th < 2e-7, "tanh: error {th}");
    }
}
