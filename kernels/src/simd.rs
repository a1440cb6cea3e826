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
