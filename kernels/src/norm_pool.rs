//! Batch norm and 2 × 2 max pooling in one pass (conv blocks with both): the normalized tensor is
//! never written, nor read back by the pooling, and the backward pass's sums run over the
//! windows' winners only (the other values get no gradient). A row's windows go through in
//! fixed groups, each one vectorized pass.

use burn::tensor::TensorData;
use rayon::prelude::*;
use std::mem::MaybeUninit;

use crate::batch_norm::{channel_terms, grad_sums};
use crate::extension::FlexTensor;
use crate::pool::{pool_forward, window_max};
use crate::simd::{values, written};

/// Windows per step of the fused kernels' inner loops: a row's windows go through in groups of
/// this many, each one vectorized pass (a loop over a short row's windows, 14 or 7 here, would
/// leave most of them to a scalar tail).
const WINDOWS: usize = 8;

/// The first windows of each group covering a row of `ow` windows: groups of `WINDOWS`, the last
/// one moved back to end at the row's end (overlapping the one before it, whose windows it
/// computes again alike); one group from 0 when the row is shorter.
fn window_groups(ow: usize) -> impl Iterator<Item = usize> {
    let last = ow.saturating_sub(WINDOWS);
    (0..ow).step_by(WINDOWS).map(move |first| first.min(last))
}

/// The values of windows `first..first + WINDOWS` of the row pair `top`, `bottom` (two top and
/// two bottom values each): borrowed where the row has them all, copied and zero-padded past
/// the row's end otherwise.
#[inline(always)]
fn window_group<'a>(
    rows: [&'a [f32]; 2],
    first: usize,
    pad: &'a mut [[f32; 2 * WINDOWS]; 2],
) -> [&'a [f32; 2 * WINDOWS]; 2] {
    let span = 2 * first..2 * (first + WINDOWS);
    match (rows[0].get(span.clone()), rows[1].get(span)) {
        (Some(t), Some(b)) => [
            t.try_into().expect("a group's length"),
            b.try_into().expect("a group's length"),
        ],
        _ => {
            for (p, r) in pad.iter_mut().zip(rows) {
                let n = r.len().min(2 * (first + WINDOWS)) - 2 * first;
                p[..n].copy_from_slice(&r[2 * first..2 * first + n]);
            }
            let [t, b] = pad;
            [t, b]
        }
    }
}

/// `src[..n]` written to `dst[..n]`: as one copy of fixed length `N` (moved in registers) when
/// the group is whole, as it is everywhere but at the end of a row shorter than a group; a
/// call to `memcpy` otherwise.
#[inline(always)]
fn put_group<T: Copy, const N: usize>(dst: &mut [MaybeUninit<T>], src: &[T; N], n: usize) {
    if n == N {
        dst[..N].write_copy_of_slice(src);
    } else {
        dst[..n].write_copy_of_slice(&src[..n]);
    }
}

/// `src[..n]` and `N − n` default values after them (`put_group`'s way round).
#[inline(always)]
fn get_group<T: Copy + Default, const N: usize>(src: &[T], n: usize) -> [T; N] {
    match src.get(..N) {
        Some(whole) if n == N => whole.try_into().expect("N values"),
        _ => {
            let mut group = [T::default(); N];
            group[..n].copy_from_slice(&src[..n]);
            group
        }
    }
}

simd_fn! {
    /// `pool_plane` of the plane batch-normalized (`a·scale + shift`, as `affine` computes it),
    /// each winner's value before normalizing into `kept`.
    pub(crate) fn norm_pool_plane(
        p: &[f32],
        o: &mut [MaybeUninit<f32>],
        which: &mut [MaybeUninit<u8>],
        kept: &mut [MaybeUninit<f32>],
        w: usize,
        scale: f32,
        shift: f32,
    ) {
        let ow = w / 2;
        let rows = o.chunks_exact_mut(ow).zip(which.chunks_exact_mut(ow));
        for (((row, which), kept), pair) in rows.zip(kept.chunks_exact_mut(ow)).zip(p.chunks_exact(2 * w)) {
            let (top, bottom) = pair.split_at(w);
            for first in window_groups(ow) {
                let n = WINDOWS.min(ow - first);
                let mut pad = [[0f32; 2 * WINDOWS]; 2];
                let [t, b] = window_group([top, bottom], first, &mut pad);
                let (mut ys, mut ks, mut xs) = ([0f32; WINDOWS], [0u8; WINDOWS], [0f32; WINDOWS]);
                for q in 0..WINDOWS {
                    let x = [t[2 * q], t[2 * q + 1], b[2 * q], b[2 * q + 1]];
                    (ks[q], ys[q], xs[q]) = window_max(x.map(|a| a * scale + shift), x);
                }
                put_group(&mut row[first..], &ys, n);
                put_group(&mut which[first..], &ks, n);
                put_group(&mut kept[first..], &xs, n);
            }
        }
    }
}

/// Batch norm of `x` (`norm_forward`'s values) max-pooled 2 × 2 in the same pass
/// (`pool_forward`): the pooled output, each window's winner and the winner's x.
pub(crate) fn norm_pool_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, Vec<u8>, Vec<f32>) {
    let (_, b) = values(beta);
    let (mean, inv_std, g) = channel_terms(gamma, stats, epsilon);
    let c = g.len();
    let w = x.layout().shape()[3];
    let plane = |i: usize,
                 p: &[f32],
                 o: &mut [MaybeUninit<f32>],
                 k: &mut [MaybeUninit<u8>],
                 kept: &mut [MaybeUninit<f32>]| {
        let ch = i % c;
        let scale = inv_std[ch] * g[ch];
        norm_pool_plane(p, o, k, kept, w, scale, b[ch] - mean[ch] * scale)
    };
    pool_forward(x, Some(&plane))
}

/// Gradients of `norm_pool_forward` with respect to x, γ and β from the pooled output's
/// gradient. The normalized value's gradient dy is the pooled gradient at each window's winner
/// and zero elsewhere, so Σ dy and Σ dy·x̂ run over the winners alone, and dx (`norm_backward`'s
/// formula) is written in one pass over x.
pub(crate) fn norm_pool_backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
    (which, kept): (&[u8], &[f32]),
    grad: &FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (dims, v) = values(x);
    let (_, gp) = values(grad);
    let (mean, inv_std, g) = channel_terms(gamma, stats, epsilon);
    let [b, c, h, w] = [dims[0], dims[1], dims[2], dims[3]];
    let (plane, pooled) = (h * w, (h / 2) * (w / 2));
    let n = (b * plane) as f64;
    let (sums, dx) = if pooled == 0 || v.is_empty() {
        // no window: no gradient reaches x (dy is zero everywhere)
        (vec![(0.0, 0.0); c], vec![0f32; v.len()])
    } else {
        // the winners' x (`kept`, `[b, c, pooled]`) and their gradients
        let sums = grad_sums(kept, &gp, c, pooled, &mean, &inv_std);
        // SAFETY: `norm_pool_dx` writes all of each plane, and the planes cover `v.len()`
        let dx = unsafe {
            written(v.len(), |dx| {
                dx.par_chunks_mut(plane)
                    .zip(v.par_chunks(plane))
                    .zip(gp.par_chunks(pooled).zip(which.par_chunks(pooled)))
                    .enumerate()
                    .for_each(|(i, ((o, xs), (gs, ks)))| {
                        let ch = i % c;
                        let (dg, db) = sums[ch];
                        let means = [mean[ch], (db / n) as f32, (dg / n) as f32];
                        norm_pool_dx(xs, gs, ks, o, w, means, inv_std[ch], g[ch] * inv_std[ch]);
                    });
            })
        };
        (sums, dx)
    };
    let dgamma = sums.iter().map(|s| s.0 as f32).collect::<Vec<_>>();
    let dbeta = sums.iter().map(|s| s.1 as f32).collect::<Vec<_>>();
    (
        FlexTensor::from_data(TensorData::new(dx, dims)),
        FlexTensor::from_data(TensorData::new(dgamma, [c])),
        FlexTensor::from_data(TensorData::new(dbeta, [c])),
    )
}

simd_fn! {
    /// One plane of `norm_pool_backward`'s dx: `norm_dx`'s `scale · (dy − mean(dy) − x̂·mean(dy·x̂))`
    /// with dy the pooled gradient `gs` at each window's winner (`which`) and zero elsewhere
    /// (including an odd size's last row and column, which no window covers).
    fn norm_pool_dx(
        xs: &[f32],
        gs: &[f32],
        which: &[u8],
        o: &mut [MaybeUninit<f32>],
        w: usize,
        means: [f32; 3],
        inv_std: f32,
        scale: f32,
    ) {
        let [mean, mean_db, mean_dg] = means;
        let f = |a: f32, d: f32| {
            let xhat = (a - mean) * inv_std;
            scale * (d - mean_db - xhat * mean_dg)
        };
        let ow = w / 2;
        let rows = o.chunks_exact_mut(2 * w).zip(xs.chunks_exact(2 * w));
        for ((pair, xpair), (gr, kr)) in rows.zip(gs.chunks_exact(ow).zip(which.chunks_exact(ow))) {
            let (top, bottom) = pair.split_at_mut(w);
            let (xt, xb) = xpair.split_at(w);
            for first in window_groups(ow) {
                let n = WINDOWS.min(ow - first);
                let mut pad = [[0f32; 2 * WINDOWS]; 2];
                let [t, b] = window_group([xt, xb], first, &mut pad);
                let (g, k): ([f32; WINDOWS], [u8; WINDOWS]) =
                    (get_group(&gr[first..], n), get_group(&kr[first..], n));
                let (mut dt, mut db) = ([0f32; 2 * WINDOWS], [0f32; 2 * WINDOWS]);
                for q in 0..WINDOWS {
                    let d = |i: u8| if k[q] == i { g[q] } else { 0.0 };
                    (dt[2 * q], dt[2 * q + 1]) = (f(t[2 * q], d(0)), f(t[2 * q + 1], d(1)));
                    (db[2 * q], db[2 * q + 1]) = (f(b[2 * q], d(2)), f(b[2 * q + 1], d(3)));
                }
                put_group(&mut top[2 * first..], &dt, 2 * n);
                put_group(&mut bottom[2 * first..], &db, 2 * n);
            }
            let odd = top[2 * ow..].iter_mut().zip(&xt[2 * ow..]);
            for (o, &a) in odd.chain(bottom[2 * ow..].iter_mut().zip(&xb[2 * ow..])) {
                o.write(f(a, 0.0));
            }
        }
        let done = o.len() / (2 * w) * 2 * w;
        for (o, &a) in o[done..].iter_mut().zip(&xs[done..]) {
            o.write(f(a, 0.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use crate::{batch_norm_train, max_pool_2x2};
    use burn::prelude::*;

    #[test]
    fn batch_norm_pooled_in_one_pass_equals_the_two_apart() {
        let device = Device::flex().autodiff();
        // odd sizes (a last row and column no window covers), rows of fewer and of more windows
        // than a group (`WINDOWS`), and γ of both signs
        for [b, c, h, w] in [[4, 3, 6, 8], [3, 2, 7, 5], [2, 3, 5, 23], [2, 2, 4, 32]] {
            let x = noise([b, c, h, w], 15, -3.0, 4.0, &device);
            let gamma = noise([c], 16, -1.5, 1.5, &device);
            let beta = noise([c], 17, -0.5, 0.5, &device);
            let weights = noise([b, c, h / 2, w / 2], 18, -1.0, 1.0, &device);
            let run = |fused: bool| {
                let (x, g, bt) = (
                    x.clone().detach().require_grad(),
                    gamma.clone().detach().require_grad(),
                    beta.clone().detach().require_grad(),
                );
                let (y, mean, var) =
                    batch_norm_train(x.clone(), g.clone(), bt.clone(), 1e-5, fused).unwrap();
                let y = if fused { y } else { max_pool_2x2(y).unwrap() };
                let grads = (y.clone() * weights.clone()).sum().backward();
                [
                    host(y),
                    host(mean),
                    host(var),
                    host(x.grad(&grads).unwrap()),
                    host(g.grad(&grads).unwrap()),
                    host(bt.grad(&grads).unwrap()),
                ]
            };
            let (fused, apart) = (run(true), run(false));
            assert_eq!(fused[0], apart[0], "the pooled output");
            let names = ["mean", "variance", "dx", "dgamma", "dbeta"];
            assert_close(&names, &fused[1..], &apart[1..], 1e-5, "");
        }
    }
}
