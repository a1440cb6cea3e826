//! A "same" convolution of stride 1 for many input channels, image by image: each image unfolded
//! into a scratch `[c·k², h·w]` that stays in cache, times the weights `[o, c·k²]`, written
//! straight into the output. 3 × 3 kernels go to `winograd` instead, forward and backward.

use burn::backend::Dispatch;
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use crate::conv::{IMAGES_PER_TASK, Same, product, sum_in_order, tap_columns, tap_row};
use crate::extension::{FlexKernels, FlexTensor, on_flex};
use crate::simd::values;
use crate::winograd::{winograd_conv, winograd_kernels, winograd_weight_grad};

/// A "same" convolution of stride 1 without bias on flex as unfold + matrix product, image by
/// image (see `FlexKernels::conv_unfolded`); `Err(x)` unchanged on any other backend.
pub fn conv_unfolded(x: Tensor<4>, weight: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    if !on_flex(&x) {
        return Err(x);
    }
    let out = <Dispatch as FlexKernels>::conv_unfolded(x.into_dispatch(), weight.into_dispatch());
    Ok(Tensor::from_dispatch(out))
}

/// One image `[c, h, w]` unfolded into `cols [c·k², h·w]`: row (channel, ky, kx) holds for every
/// output pixel the input pixel that tap reads, zero outside the image. Every value of `cols` is
/// written (it is a reused scratch buffer).
fn unfold_image(s: &Same, image: &[f32], cols: &mut [f32]) {
    let (plane, w) = (s.plane(), s.w);
    let (ph, pw) = (s.kh / 2, s.kw / 2);
    for (row, out) in cols.chunks_exact_mut(plane).enumerate() {
        let (ch, ky, kx) = s.tap(row);
        let src = &image[ch * plane..(ch + 1) * plane];
        let Some((x0, x1)) = tap_columns(kx, pw, w) else {
            out.fill(0.0);
            continue;
        };
        for (y, o) in out.chunks_exact_mut(w).enumerate() {
            let Some(sy) = tap_row(y, ky, ph, s.h) else {
                o.fill(0.0);
                continue;
            };
            let from = sy * w + x0 + kx - pw;
            o[..x0].fill(0.0);
            o[x0..x1].copy_from_slice(&src[from..from + x1 - x0]);
            o[x1..].fill(0.0);
        }
    }
}

simd_fn! {
    /// The inverse of `unfold_image` for gradients: `dcols [c·k², h·w]` summed back onto one image's
    /// input gradient `dx [c, h, w]` (each input pixel receives the gradient of every tap that read
    /// it); `dx` is overwritten.
    fn fold_image(s: &Same, dcols: &[f32], dx: &mut [f32]) {
        let (plane, w) = (s.plane(), s.w);
        let (ph, pw) = (s.kh / 2, s.kw / 2);
        dx.fill(0.0);
        for (row, d) in dcols.chunks_exact(plane).enumerate() {
            let (ch, ky, kx) = s.tap(row);
            let Some((x0, x1)) = tap_columns(kx, pw, w) else {
                continue;
            };
            let out = &mut dx[ch * plane..(ch + 1) * plane];
            for y in 0..s.h {
                let Some(sy) = tap_row(y, ky, ph, s.h) else {
                    continue;
                };
                let to = sy * w + x0 + kx - pw;
                for (t, &g) in out[to..to + x1 - x0]
                    .iter_mut()
                    .zip(&d[y * w + x0..y * w + x1])
                {
                    *t += g;
                }
            }
        }
}
}

/// A "same" convolution of stride 1 with many input channels, image by image: each image
/// unfolded into a scratch `[c·k², h·w]` that stays in cache, times the weights `[o, c·k²]`,
/// written straight into the image's output `[o, h·w]`.
pub(crate) fn conv_unfolded_forward(x: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
    let (dims, v) = values(x);
    let (wd, wt) = values(weight);
    let s = Same::new(&dims, &wd);
    if s.is_3x3() {
        let u = winograd_kernels(&wt, s.o, s.c, false);
        let out = winograd_conv(&v, [s.b, s.c, s.h, s.w], &u, s.o);
        return FlexTensor::from_data(TensorData::new(out, [s.b, s.o, s.h, s.w]));
    }
    let (plane, taps) = (s.plane(), s.taps());
    let mut out = vec![0f32; s.b * s.o * plane];
    out.par_chunks_mut(IMAGES_PER_TASK * s.o * plane)
        .zip(v.par_chunks(IMAGES_PER_TASK * s.c * plane))
        .for_each(|(ys, xs)| {
            let mut cols = vec![0f32; taps * plane];
            for (y, image) in ys
                .chunks_exact_mut(s.o * plane)
                .zip(xs.chunks_exact(s.c * plane))
            {
                unfold_image(&s, image, &mut cols);
                product(y, false, &wt, false, &cols, false, [s.o, plane, taps]);
            }
        });
    FlexTensor::from_data(TensorData::new(out, [s.b, s.o, s.h, s.w]))
}

/// The backward pass of `conv_unfolded_forward` from the output gradient `grad [b, o, h, w]`:
/// for a 3 × 3 kernel by Winograd's F(2×2, 3×3) (the input gradient a convolution of the output
/// gradient, the weight gradient the forward pass transposed), otherwise `unfolded_backward`.
pub(crate) fn conv_unfolded_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    want: [bool; 2],
) -> [Option<FlexTensor>; 2] {
    let (dims, v) = values(x);
    let (wd, wt) = values(weight);
    let s = Same::new(&dims, &wd);
    if !s.is_3x3() {
        return unfolded_backward(x, weight, grad, want);
    }
    let (_, g) = values(grad);
    let [want_dx, want_dw] = want;
    let dx = want_dx.then(|| {
        let u = winograd_kernels(&wt, s.o, s.c, true);
        let dx = winograd_conv(&g, [s.b, s.o, s.h, s.w], &u, s.c);
        FlexTensor::from_data(TensorData::new(dx, [s.b, s.c, s.h, s.w]))
    });
    let dw = want_dw.then(|| {
        let dw = winograd_weight_grad(&v, &g, &s);
        FlexTensor::from_data(TensorData::new(dw, [s.o, s.c, 3, 3]))
    });
    [dx, dw]
}

/// The backward pass of a "same" convolution as unfold + matrix product: the input gradient
/// when `want_dx` (per image `Wᵀ · dY`, folded back), and the weight gradient when `want_dw`
/// (per image `dY · columnsᵀ`, the unfolding computed again rather than kept from the forward
/// pass; summed per task, then over tasks in order).
pub(crate) fn unfolded_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    [want_dx, want_dw]: [bool; 2],
) -> [Option<FlexTensor>; 2] {
    let (dims, v) = values(x);
    let (wd, wt) = values(weight);
    let (_, g) = values(grad);
    let s = Same::new(&dims, &wd);
    let (plane, taps) = (s.plane(), s.taps());
    let mut dx = vec![0f32; if want_dx { s.b * s.c * plane } else { 0 }];
    let dx_tasks: Vec<Option<&mut [f32]>> = if want_dx {
        dx.chunks_mut(IMAGES_PER_TASK * s.c * plane)
            .map(Some)
            .collect()
    } else {
        (0..s.tasks()).map(|_| None).collect()
    };
    let partials: Vec<Vec<f32>> = dx_tasks
        .into_par_iter()
        .enumerate()
        .map(|(t, mut dxs)| {
            let mut cols = vec![0f32; if want_dw { taps * plane } else { 0 }];
            let mut dcols = vec![0f32; if want_dx { taps * plane } else { 0 }];
            let mut dw = vec![0f32; s.o * taps];
            for (j, i) in s.task_images(t).enumerate() {
                let image = &v[i * s.c * plane..(i + 1) * s.c * plane];
                let gi = &g[i * s.o * plane..(i + 1) * s.o * plane];
                if want_dw {
                    unfold_image(&s, image, &mut cols);
                    product(&mut dw, j > 0, gi, false, &cols, true, [s.o, taps, plane]);
                }
                if let Some(dxs) = dxs.as_deref_mut() {
                    product(&mut dcols, false, &wt, true, gi, false, [taps, plane, s.o]);
                    fold_image(&s, &dcols, &mut dxs[j * s.c * plane..(j + 1) * s.c * plane]);
                }
            }
            dw
        })
        .collect();
    let dw = sum_in_order(partials, s.o * taps);
    let dx = want_dx.then(|| FlexTensor::from_data(TensorData::new(dx, [s.b, s.c, s.h, s.w])));
    let dw = want_dw.then(|| FlexTensor::from_data(TensorData::new(dw, [s.o, s.c, s.kh, s.kw])));
    [dx, dw]
}
