//! 2 × 2 max pooling of stride 2: the same result as Burn's `MaxPool2d` with kernel 2 and
//! stride 2 (the maximum of each window; odd sizes drop the last row and column), and in the
//! backward pass the gradient to the first maximal pixel in reading order (top-left,
//! top-right, bottom-left, bottom-right), as Burn's pooling sends it. Each window is read once;
//! the backward pass keeps one byte per output (which value won) instead of the input.

use burn::backend::Dispatch;
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;
use std::mem::MaybeUninit;

use crate::extension::{FlexKernels, FlexTensor, on_flex};
use crate::simd::{values, written};

/// The kernel's pooling of `x` on the flex backend (f32); `Err(x)` unchanged on any other
/// backend, which keeps Burn's pooling.
pub fn max_pool_2x2(x: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    if !on_flex(&x) {
        return Err(x);
    }
    let out = <Dispatch as FlexKernels>::max_pool_2x2(x.into_dispatch());
    Ok(Tensor::from_dispatch(out))
}

/// Index (0..4, reading order) of the first maximal value `ys` of a window, that value, and the
/// same index's value of `xs` (the value before a mapping). NaN wins, as in Burn's pooling
/// (`v > max` fails for NaN, so a NaN seen first stays). Selects, no branches: the loop over
/// windows vectorizes.
#[inline(always)]
pub(crate) fn window_max(ys: [f32; 4], xs: [f32; 4]) -> (u8, f32, f32) {
    let mut best = (0u8, ys[0], xs[0]);
    for k in 1..4 {
        best = if ys[k] > best.1 {
            (k as u8, ys[k], xs[k])
        } else {
            best
        };
    }
    best
}

/// A fused pooling's kernel for plane `i` (image `i / c`, channel `i % c`): the plane's values
/// `p` mapped and max-pooled into `o`, each window's winner into `which`, the winner's value
/// before the mapping into `kept` (`norm_pool`: batch norm's output, pooled without being
/// kept); every value of the three written.
pub(crate) type FusedPlane<'a> = &'a (
        dyn Fn(
    usize,
    &[f32],
    &mut [MaybeUninit<f32>],
    &mut [MaybeUninit<u8>],
    &mut [MaybeUninit<f32>],
) + Sync
    );

/// `x` max-pooled, and for every output which value of its window (0..4, `window_max`) won.
/// With `fused`, each plane goes through that kernel instead, and the third result holds each
/// window's winner before its mapping (empty otherwise).
pub(crate) fn pool_forward(
    x: &FlexTensor,
    fused: Option<FusedPlane>,
) -> (FlexTensor, Vec<u8>, Vec<f32>) {
    let (dims, src) = values(x);
    let [b, c, h, w] = [dims[0], dims[1], dims[2], dims[3]];
    let (oh, ow) = (h / 2, w / 2);
    let n = b * c * oh * ow;
    let (mut out, mut which, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    if n > 0 {
        // SAFETY: `pool_plane` and a fused kernel write every value of their plane (and a fused
        // kernel of its `kept` plane), and the planes cover the `n` values of each
        let kept_len = if fused.is_some() { n } else { 0 };
        (out, which, kept) = unsafe {
            let (mut which_planes, mut kept_planes) = (None, None);
            let out = written(n, |out| {
                which_planes = Some(written(n, |which| {
                    kept_planes = Some(written(kept_len, |kept| {
                        let planes = out
                            .par_chunks_mut(oh * ow)
                            .zip(which.par_chunks_mut(oh * ow))
                            .zip(src.par_chunks(h * w))
                            .enumerate();
                        match fused {
                            Some(f) => planes
                                .zip(kept.par_chunks_mut(oh * ow))
                                .for_each(|((i, ((o, k), p)), x)| f(i, p, o, k, x)),
                            None => planes.for_each(|(_, ((o, k), p))| pool_plane(p, o, k, w)),
                        }
                    }));
                }));
            });
            let which = which_planes.expect("filled with the output");
            (out, which, kept_planes.expect("filled with the output"))
        };
    }
    let out = FlexTensor::from_data(TensorData::new(out, [b, c, oh, ow]));
    (out, which, kept)
}

simd_fn! {
    /// One plane `p` of width `w` max-pooled into `o` (h/2 × w/2, at least one window), each
    /// window's winner into `which`.
    fn pool_plane(p: &[f32], o: &mut [MaybeUninit<f32>], which: &mut [MaybeUninit<u8>], w: usize) {
        let rows = o.chunks_exact_mut(w / 2).zip(which.chunks_exact_mut(w / 2));
        for ((row, which), pair) in rows.zip(p.chunks_exact(2 * w)) {
            let (top, bottom) = pair.split_at(w);
            let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
            for ((v, k), (t, b)) in row.iter_mut().zip(which).zip(windows) {
                let xs = [t[0], t[1], b[0], b[1]];
                let (i, m, _) = window_max(xs, xs);
                v.write(m);
                k.write(i);
            }
        }
    }
}

/// The pooling's input gradient `[b, c, h, w]` (`dims`) from the output gradient and the
/// forward pass's winners.
pub(crate) fn pool_backward(dims: [usize; 4], which: &[u8], grad: &FlexTensor) -> FlexTensor {
    let (_, g) = values(grad);
    let [b, c, h, w] = dims;
    let (oh, ow) = (h / 2, w / 2);
    let out = if oh * ow > 0 {
        // SAFETY: `pool_plane_backward` writes every value of its plane; the planes cover all
        unsafe {
            written(b * c * h * w, |out| {
                out.par_chunks_mut(h * w)
                    .zip(which.par_chunks(oh * ow))
                    .zip(g.par_chunks(oh * ow))
                    .for_each(|((o, k), gp)| pool_plane_backward(k, gp, o, w));
            })
        }
    } else {
        vec![0f32; b * c * h * w]
    };
    FlexTensor::from_data(TensorData::new(out, dims))
}

simd_fn! {
    /// The gradient `gp` of one pooled plane routed back onto `o` (the input plane's shape, width
    /// `w`): each value to its window's winner (`which`), zero everywhere else. Every value of `o`
    /// is written, without a branch on the winner.
    fn pool_plane_backward(which: &[u8], gp: &[f32], o: &mut [MaybeUninit<f32>], w: usize) {
        let ow = w / 2;
        let pairs = o.chunks_exact_mut(2 * w);
        for ((pair, gr), kr) in pairs.zip(gp.chunks_exact(ow)).zip(which.chunks_exact(ow)) {
            let (top, bottom) = pair.split_at_mut(w);
            let windows = top.chunks_exact_mut(2).zip(bottom.chunks_exact_mut(2));
            for ((t, b), (&g, &k)) in windows.zip(gr.iter().zip(kr)) {
                let at = |i: u8| MaybeUninit::new(if k == i { g } else { 0.0 });
                (t[0], t[1], b[0], b[1]) = (at(0), at(1), at(2), at(3));
            }
            // an odd width's last column takes no gradient
            top[2 * ow..].fill(MaybeUninit::new(0.0));
            bottom[2 * ow..].fill(MaybeUninit::new(0.0));
        }
        // nor an odd height's last row
        let done = o.len() / (2 * w) * 2 * w;
        o[done..].fill(MaybeUninit::new(0.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::nn::pool::MaxPool2dConfig;

    #[test]
    fn forward_and_gradient_equal_burns_pooling() {
        let device = Device::flex().autodiff();
        // odd sizes drop the last row and column, as Burn's pooling does; ties (the zeros after
        // a ReLU) send the gradient to the first maximum in reading order
        for [b, c, h, w] in [[3, 4, 8, 6], [2, 3, 7, 5]] {
            let x = burn::tensor::activation::relu(noise([b, c, h, w], 1, -1.0, 1.0, &device));
            let weights = noise([b, c, h / 2, w / 2], 2, -1.0, 1.0, &device);
            let ours_x = x.clone().detach().require_grad();
            let burn_x = x.detach().require_grad();
            let ours = max_pool_2x2(ours_x.clone()).expect("flex runs the kernel");
            let theirs = MaxPool2dConfig::new([2, 2]).init().forward(burn_x.clone());
            assert_eq!(host(ours.clone()), host(theirs.clone()));
            let g1 = (ours * weights.clone()).sum().backward();
            let g2 = (theirs * weights).sum().backward();
            let (a, b) = (ours_x.grad(&g1).unwrap(), burn_x.grad(&g2).unwrap());
            assert_eq!(host(a), host(b));
        }
    }

    #[test]
    fn other_backends_keep_burns_pooling() {
        #[allow(deprecated)]
        let x = Tensor::<4>::zeros([1, 1, 2, 2], &Device::ndarray());
        assert!(max_pool_2x2(x).is_err());
    }
}
