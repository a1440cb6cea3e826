//! Batch normalization, training and inference: what Burn's `batch_norm_train` and its backward
//! compute (per-channel mean and biased variance over batch and pixels,
//! y = (x − mean)/√(var + ε)·γ + β), in one pass for the statistics and one for the output (two
//! backward) instead of a dozen element-wise ops. Sums run in eight f32 lanes per image plane,
//! added up in f64.

use burn::backend::Dispatch;
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;
use std::mem::MaybeUninit;

use crate::extension::{FlexKernels, FlexTensor, on_flex};
use crate::simd::{lane_sum, lane_sums2, values, written};

/// Batch norm with given statistics (inference: the running mean and variance) on flex, without
/// autodiff, then 2 × 2 max pooling in the same pass when `pool`; `Err(x)` unchanged otherwise.
pub fn batch_norm_eval(
    x: Tensor<4>,
    [gamma, beta, mean, var]: [Tensor<1>; 4],
    epsilon: f64,
    pool: bool,
) -> Result<Tensor<4>, Tensor<4>> {
    if !on_flex(&x) || x.device().is_autodiff() {
        return Err(x);
    }
    let c = mean.dims()[0];
    let stats = Tensor::cat(vec![mean, var], 0).reshape([2, c]);
    let out = <Dispatch as FlexKernels>::batch_norm_apply(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.into_dispatch(),
        epsilon,
        pool,
    );
    Ok(Tensor::from_dispatch(out))
}

/// Batch norm in training mode on flex, then 2 × 2 max pooling in the same pass when `pool`: the
/// output, and the batch's mean and biased variance (detached, for the running statistics);
/// `Err(x)` unchanged on any other backend.
pub fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    pool: bool,
) -> Result<(Tensor<4>, Tensor<1>, Tensor<1>), Tensor<4>> {
    if !on_flex(&x) {
        return Err(x);
    }
    let c = x.dims()[1];
    let stats = Tensor::<2>::from_dispatch(<Dispatch as FlexKernels>::batch_stats(
        x.clone().into_dispatch(),
    ));
    let out = <Dispatch as FlexKernels>::batch_norm_apply(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.clone().into_dispatch(),
        epsilon,
        pool,
    );
    let mean = stats.clone().slice([0..1, 0..c]).reshape([c]);
    let var = stats.slice([1..2, 0..c]).reshape([c]);
    Ok((Tensor::from_dispatch(out), mean, var))
}

/// `[b, c, h, w]`: the values of channel `ch` are `b` runs of `h·w`, one per image.
fn channel_runs(x: &[f32], c: usize, plane: usize, ch: usize) -> impl Iterator<Item = &[f32]> {
    x.chunks(c * plane)
        .map(move |image| &image[ch * plane..(ch + 1) * plane])
}

/// Per channel: mean and biased variance, as `[2, c]`.
pub(crate) fn stats(x: &FlexTensor) -> FlexTensor {
    let (dims, v) = values(x);
    let (c, plane) = (dims[1], dims[2..].iter().product::<usize>());
    let per: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| channel_stats(&v, c, plane, ch))
        .collect();
    let mut out: Vec<f32> = per.iter().map(|p| p.0).collect();
    out.extend(per.iter().map(|p| p.1));
    FlexTensor::from_data(TensorData::new(out, [2, c]))
}

simd_fn! {
    /// Channel `ch`'s mean and biased variance over `v` (`[b, c, plane]`).
    fn channel_stats(v: &[f32], c: usize, plane: usize, ch: usize) -> (f32, f32) {
        let n = (v.len() / c) as f64;
        let mut sum = 0f64;
        for run in channel_runs(v, c, plane, ch) {
            sum += lane_sum(run, |a| a);
        }
        let mean = sum / n;
        let m = mean as f32;
        let mut sq = 0f64;
        for run in channel_runs(v, c, plane, ch) {
            sq += lane_sum(run, |a| (a - m) * (a - m));
        }
        (m, (sq / n) as f32)
    }
}

/// Per channel: the mean, 1/√(var + ε), and γ.
pub(crate) fn channel_terms(
    gamma: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (_, s) = values(stats);
    let (_, g) = values(gamma);
    let c = g.len();
    let inv_std = s[c..]
        .iter()
        .map(|&var| (1.0 / (var as f64 + epsilon).sqrt()) as f32)
        .collect();
    (s[..c].to_vec(), inv_std, g.to_vec())
}

pub(crate) fn norm_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    let (dims, v) = values(x);
    let (_, b) = values(beta);
    let (mean, inv_std, g) = channel_terms(gamma, stats, epsilon);
    let (c, plane) = (dims[1], dims[2..].iter().product::<usize>());
    // SAFETY: `affine` writes all of each plane, and the planes cover `v.len()`
    let out = unsafe {
        written(v.len(), |out| {
            out.par_chunks_mut(plane)
                .zip(v.par_chunks(plane))
                .enumerate()
                .for_each(|(i, (o, xs))| {
                    let ch = i % c;
                    let scale = inv_std[ch] * g[ch];
                    affine(xs, o, scale, b[ch] - mean[ch] * scale);
                });
        })
    };
    FlexTensor::from_data(TensorData::new(out, dims))
}

simd_fn! {
    /// `o = a·scale + shift` for each `a` of `xs` (as long as `o`).
    pub(crate) fn affine(xs: &[f32], o: &mut [MaybeUninit<f32>], scale: f32, shift: f32) {
        for (o, &a) in o.iter_mut().zip(xs) {
            o.write(a * scale + shift);
        }
    }
}

/// Gradients of batch norm with respect to x, γ and β:
/// dβ = Σ dy, dγ = Σ dy·x̂, dx = γ/σ · (dy − dβ/n − x̂·dγ/n) with x̂ = (x − mean)/σ.
pub(crate) fn norm_backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
    grad: &FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (dims, v) = values(x);
    let (_, dy) = values(grad);
    let (mean, inv_std, g) = channel_terms(gamma, stats, epsilon);
    let (c, plane) = (dims[1], dims[2..].iter().product::<usize>());
    let n = (v.len() / c.max(1)) as f64;
    let sums = grad_sums(&v, &dy, c, plane, &mean, &inv_std);
    // SAFETY: `norm_dx` writes all of each plane, and the planes cover `v.len()`
    let dx = unsafe {
        written(v.len(), |dx| {
            dx.par_chunks_mut(plane)
                .zip(v.par_chunks(plane).zip(dy.par_chunks(plane)))
                .enumerate()
                .for_each(|(i, (o, (xs, ds)))| {
                    let ch = i % c;
                    let (dg, db) = sums[ch];
                    let means = [mean[ch], (db / n) as f32, (dg / n) as f32];
                    norm_dx(xs, ds, o, means, inv_std[ch], g[ch] * inv_std[ch]);
                });
        })
    };
    let dgamma = sums.iter().map(|s| s.0 as f32).collect::<Vec<_>>();
    let dbeta = sums.iter().map(|s| s.1 as f32).collect::<Vec<_>>();
    (
        FlexTensor::from_data(TensorData::new(dx, dims)),
        FlexTensor::from_data(TensorData::new(dgamma, [c])),
        FlexTensor::from_data(TensorData::new(dbeta, [c])),
    )
}

/// Per channel of `v` and `dy` (`[b, c, plane]`): (Σ dy·x̂, Σ dy), x̂ = (x − mean)·inv_std.
pub(crate) fn grad_sums(
    v: &[f32],
    dy: &[f32],
    c: usize,
    plane: usize,
    mean: &[f32],
    inv_std: &[f32],
) -> Vec<(f64, f64)> {
    (0..c)
        .into_par_iter()
        .map(|ch| channel_grad_sums(v, dy, c, plane, ch, mean[ch], inv_std[ch]))
        .collect()
}

simd_fn! {
    /// Channel `ch`'s (Σ dy·x̂, Σ dy) over `v` and `dy` (`[b, c, plane]`), x̂ = (x − mean)·`inv_std`.
    fn channel_grad_sums(
        v: &[f32],
        dy: &[f32],
        c: usize,
        plane: usize,
        ch: usize,
        mean: f32,
        inv_std: f32,
    ) -> (f64, f64) {
        let (mut db, mut dg) = (0f64, 0f64);
        for (xr, gr) in channel_runs(v, c, plane, ch).zip(channel_runs(dy, c, plane, ch)) {
            let (b, g) = lane_sums2(xr, gr, |a| (a - mean) * inv_std);
            db += b;
            dg += g;
        }
        (dg, db)
    }
}

simd_fn! {
    /// One plane of batch norm's dx: `scale · (dy − mean(dy) − x̂·mean(dy·x̂))`, with `means` the
    /// channel's (mean of x, mean of dy, mean of dy·x̂) and x̂ = (x − mean)·`inv_std`.
    fn norm_dx(
        xs: &[f32],
        ds: &[f32],
        o: &mut [MaybeUninit<f32>],
        means: [f32; 3],
        inv_std: f32,
        scale: f32,
    ) {
        let [mean, mean_db, mean_dg] = means;
        for ((o, &a), &d) in o.iter_mut().zip(xs).zip(ds) {
            let xhat = (a - mean) * inv_std;
            o.write(scale * (d - mean_db - xhat * mean_dg));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::nn::pool::MaxPool2dConfig;

    #[test]
    fn batch_norm_and_its_gradients_equal_burns() {
        let device = Device::flex().autodiff();
        let [b, c, h, w] = [4, 3, 5, 6];
        let x = noise([b, c, h, w], 3, -3.0, 4.0, &device);
        let gamma = noise([c], 4, 0.5, 1.5, &device);
        let beta = noise([c], 5, -0.5, 0.5, &device);
        let weights = noise([b, c, h, w], 6, -1.0, 1.0, &device);
        let run = |ours: bool| {
            let (x, g, bt) = (
                x.clone().detach().require_grad(),
                gamma.clone().detach().require_grad(),
                beta.clone().detach().require_grad(),
            );
            let (y, mean, var) = if ours {
                batch_norm_train(x.clone(), g.clone(), bt.clone(), 1e-5, false).unwrap()
            } else {
                let r =
                    burn::tensor::module::batch_norm_train(x.clone(), g.clone(), bt.clone(), 1e-5);
                (r.output, r.mean, r.variance)
            };
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
        let (ours, theirs) = (run(true), run(false));
        let names = ["output", "mean", "variance", "dx", "dgamma", "dbeta"];
        assert_close(&names, &ours, &theirs, 1e-4, "");
    }

    #[test]
    fn inference_batch_norm_equals_burns() {
        let device = Device::flex();
        let x = noise([3, 4, 5, 5], 10, -2.0, 4.0, &device);
        let p = |seed: u64, m: f32| noise([4], seed, m, m + 1.0, &device);
        // γ of both signs: a negative one turns each window's maximum into its minimum
        let (g, b, mean, var) = (p(11, -0.5), p(12, -0.5), p(13, 0.0), p(14, 0.5));
        let theirs = burn::tensor::module::batch_norm(
            x.clone(),
            g.clone(),
            b.clone(),
            mean.clone(),
            var.clone(),
            1e-5,
        );
        let theirs_pooled = MaxPool2dConfig::new([2, 2]).init().forward(theirs.clone());
        for (pool, theirs) in [(false, theirs), (true, theirs_pooled)] {
            let args = [g.clone(), b.clone(), mean.clone(), var.clone()];
            let ours = batch_norm_eval(x.clone(), args, 1e-5, pool).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let d = worst(&host(ours), &host(theirs));
            assert!(d < 1e-5, "pooled {pool}: differs by {d}");
        }
    }
}
