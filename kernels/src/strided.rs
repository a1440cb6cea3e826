//! Convolutions of any stride and padding with a square kernel, and their transposes: the
//! GAN's and the patch discriminator's 4 × 4 convolutions of stride 2, the generator's 4 × 4
//! transposed convolutions and the U-Net's 2 × 2 ones.
//!
//! A convolution and its transpose are one linear map read in its two directions, between a
//! "wide" side (a convolution's input, a transposed convolution's output: `[c, h, w]` per
//! image) and a "narrow" side (`[o, oh, ow]`). Per image, the wide side unfolded into columns
//! `[c·k², oh·ow]` times the weights `[o, c·k²]` gives the narrow side (`gather`); the
//! weights transposed times the narrow side, folded back, gives the wide side (`spread`); the
//! narrow side times the columns transposed gives the weights' gradient. A convolution's
//! forward pass gathers and its input gradient spreads; a transposed convolution's forward
//! pass spreads and its input gradient gathers. Images run in tasks of a fixed number, side by
//! side, and the weights' gradient is summed per task, then over tasks in order, so results do
//! not depend on the thread count.

use std::ops::Range;

use burn::backend::Dispatch;
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use crate::conv::{IMAGES_PER_TASK, product, sum_in_order};
use crate::extension::{FlexKernels, FlexTensor, on_flex};
use crate::simd::values;

/// A convolution of `x [b, c, h, w]` with `weight [o, c, k, k]` (stride and padding the same
/// both ways, no bias, dilation or groups) on flex (see `FlexKernels::conv_strided`);
/// `Err(x)` unchanged on any other backend, for a kernel that is not square, or where the
/// kernel leaves no output.
pub fn conv_strided(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: usize,
    padding: usize,
) -> Result<Tensor<4>, Tensor<4>> {
    entry(x, weight, [stride, padding], false)
}

/// A transposed convolution of `x [b, o, oh, ow]` with `weight [o, c, k, k]` (Burn's layout:
/// input channels first) to `[b, c, (oh − 1)·stride + k − 2·padding, …]` (no output padding,
/// bias, dilation or groups) on flex (see `FlexKernels::conv_transpose_strided`); `Err(x)`
/// unchanged on any other backend, for a kernel that is not square, or where the padding
/// leaves no output.
pub fn conv_transpose_strided(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: usize,
    padding: usize,
) -> Result<Tensor<4>, Tensor<4>> {
    entry(x, weight, [stride, padding], true)
}

/// Both entry functions: the op on flex where the kernels cover the shapes (a square kernel, a
/// stride, at least one output position each way), `Err(x)` otherwise.
fn entry(
    x: Tensor<4>,
    weight: Tensor<4>,
    [stride, padding]: [usize; 2],
    transposed: bool,
) -> Result<Tensor<4>, Tensor<4>> {
    let [.., h, w] = x.dims();
    let [.., kh, kw] = weight.dims();
    let reaches = |n: usize| {
        if transposed {
            n > 0 && (n - 1) * stride + kh > 2 * padding
        } else {
            n + 2 * padding >= kh
        }
    };
    if !on_flex(&x) || kh != kw || stride == 0 || !reaches(h) || !reaches(w) {
        return Err(x);
    }
    let op = if transposed {
        <Dispatch as FlexKernels>::conv_transpose_strided
    } else {
        <Dispatch as FlexKernels>::conv_strided
    };
    let out = op(x.into_dispatch(), weight.into_dispatch(), stride, padding);
    Ok(Tensor::from_dispatch(out))
}

/// The shapes of a strided convolution's two sides: wide `[b, c, h, w]`, narrow
/// `[b, o, oh, ow]`, weights `[o, c, k, k]`.
#[derive(Clone, Copy)]
pub(crate) struct Strided {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    oh: usize,
    ow: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

impl Strided {
    /// A convolution of `x` (the wide side) with `weight`.
    fn conv(x: &[usize], weight: &[usize], [stride, pad]: [usize; 2]) -> Self {
        let (k, h, w) = (weight[2], x[2], x[3]);
        let side = |n: usize| (n + 2 * pad).saturating_sub(k) / stride + 1;
        Strided {
            b: x[0],
            c: x[1],
            h,
            w,
            o: weight[0],
            oh: side(h),
            ow: side(w),
            k,
            stride,
            pad,
        }
    }

    /// A transposed convolution of `x` (the narrow side) with `weight`.
    fn transposed(x: &[usize], weight: &[usize], [stride, pad]: [usize; 2]) -> Self {
        let k = weight[2];
        let side = |n: usize| (n - 1) * stride + k - 2 * pad;
        Strided {
            b: x[0],
            c: weight[1],
            h: side(x[2]),
            w: side(x[3]),
            o: x[1],
            oh: x[2],
            ow: x[3],
            k,
            stride,
            pad,
        }
    }

    fn wide(&self) -> usize {
        self.c * self.h * self.w
    }

    fn narrow(&self) -> usize {
        self.o * self.oh * self.ow
    }

    fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// Rows of one image's unfolding, `c·k²`: the weight matrix's inner dimension.
    fn taps(&self) -> usize {
        self.c * self.k * self.k
    }

    /// For tap `t` along a side of `n` wide values and `m` narrow ones: the narrow positions
    /// `i` whose wide position i·stride + t − pad lies inside `0..n`.
    fn reach(&self, t: usize, n: usize, m: usize) -> Range<usize> {
        let lo = (self.pad.saturating_sub(t)).div_ceil(self.stride);
        let hi = if n + self.pad > t {
            ((n + self.pad - t - 1) / self.stride + 1).min(m)
        } else {
            0
        };
        lo..hi.max(lo)
    }

    /// For row `row` of the unfolding: its channel, and for each narrow position of the
    /// reach, where the tap reads on the wide side (rows, then columns).
    fn tap(&self, row: usize) -> (usize, Range<usize>, Range<usize>, [usize; 2]) {
        let k2 = self.k * self.k;
        let (ch, ky, kx) = (row / k2, row / self.k % self.k, row % self.k);
        let rows = self.reach(ky, self.h, self.oh);
        let cols = self.reach(kx, self.w, self.ow);
        (ch, rows, cols, [ky, kx])
    }

    /// The wide index (within a channel's plane) tap `[ky, kx]` reads at narrow `(y, x)`.
    fn source(&self, y: usize, x: usize, [ky, kx]: [usize; 2]) -> usize {
        (y * self.stride + ky - self.pad) * self.w + x * self.stride + kx - self.pad
    }

    fn task_images(&self, t: usize) -> Range<usize> {
        t * IMAGES_PER_TASK..self.b.min((t + 1) * IMAGES_PER_TASK)
    }
}

simd_fn! {
    /// One image's wide side `[c, h, w]` unfolded into `cols [c·k², oh·ow]`: row (channel, ky,
    /// kx) holds for every narrow position the wide value that tap reads, zero outside the
    /// image. Every value of `cols` is written (it is a reused scratch buffer).
    fn unfold(s: &Strided, image: &[f32], cols: &mut [f32]) {
        let plane = s.h * s.w;
        for (row, out) in cols.chunks_exact_mut(s.positions()).enumerate() {
            let (ch, rows, columns, tap) = s.tap(row);
            let src = &image[ch * plane..(ch + 1) * plane];
            for (y, o) in out.chunks_exact_mut(s.ow).enumerate() {
                if !rows.contains(&y) || columns.is_empty() {
                    o.fill(0.0);
                    continue;
                }
                o[..columns.start].fill(0.0);
                let from = s.source(y, columns.start, tap);
                let run = &mut o[columns.clone()];
                if s.stride == 1 {
                    run.copy_from_slice(&src[from..from + run.len()]);
                } else {
                    for (j, v) in run.iter_mut().enumerate() {
                        *v = src[from + j * s.stride];
                    }
                }
                o[columns.end..].fill(0.0);
            }
        }
    }
}

simd_fn! {
    /// The inverse of `unfold` for gradients and transposed convolutions: `cols [c·k², oh·ow]`
    /// summed back onto one image's wide side `[c, h, w]` (each wide value receives every tap
    /// that reads it); `image` is overwritten.
    fn fold(s: &Strided, cols: &[f32], image: &mut [f32]) {
        let plane = s.h * s.w;
        image.fill(0.0);
        for (row, d) in cols.chunks_exact(s.positions()).enumerate() {
            let (ch, rows, columns, tap) = s.tap(row);
            let dst = &mut image[ch * plane..(ch + 1) * plane];
            for y in rows {
                let from = s.source(y, columns.start, tap);
                let run = &d[y * s.ow + columns.start..y * s.ow + columns.end];
                for (j, &g) in run.iter().enumerate() {
                    dst[from + j * s.stride] += g;
                }
            }
        }
    }
}

/// Runs `task(t, out)` for every task `t` side by side, `out` the task's part of an output of
/// `per_image` values per image (empty when `per_image` is 0); returns the output and the
/// tasks' results in task order.
fn run_tasks<R: Send>(
    s: &Strided,
    per_image: usize,
    task: impl Fn(usize, &mut [f32]) -> R + Sync,
) -> (Vec<f32>, Vec<R>) {
    let mut out = vec![0f32; s.b * per_image];
    let tasks = s.b.div_ceil(IMAGES_PER_TASK);
    let results = if per_image == 0 {
        (0..tasks)
            .into_par_iter()
            .map(|t| task(t, &mut []))
            .collect()
    } else {
        out.par_chunks_mut(IMAGES_PER_TASK * per_image)
            .enumerate()
            .map(|(t, part)| task(t, part))
            .collect()
    };
    (out, results)
}

/// The narrow side from the wide one, `W · unfold(wide)` per image (a convolution's forward
/// pass, a transposed convolution's input gradient).
fn gather(s: &Strided, wide: &[f32], weight: &[f32]) -> Vec<f32> {
    let (p, taps) = (s.positions(), s.taps());
    run_tasks(s, s.narrow(), |t, out| {
        let mut cols = vec![0f32; taps * p];
        for (i, y) in s.task_images(t).zip(out.chunks_exact_mut(s.narrow())) {
            unfold(s, &wide[i * s.wide()..(i + 1) * s.wide()], &mut cols);
            product(y, false, weight, false, &cols, false, [s.o, p, taps]);
        }
    })
    .0
}

/// The wide side from the narrow one, `fold(Wᵀ · narrow)` per image (a transposed
/// convolution's forward pass, a convolution's input gradient).
fn spread(s: &Strided, narrow: &[f32], weight: &[f32]) -> Vec<f32> {
    let (p, taps) = (s.positions(), s.taps());
    run_tasks(s, s.wide(), |t, out| {
        let mut cols = vec![0f32; taps * p];
        for (i, x) in s.task_images(t).zip(out.chunks_exact_mut(s.wide())) {
            let n = &narrow[i * s.narrow()..(i + 1) * s.narrow()];
            product(&mut cols, false, weight, true, n, false, [taps, p, s.o]);
            fold(s, &cols, x);
        }
    })
    .0
}

/// The weights' gradient `Σ narrow · unfold(wide)ᵀ` over the images, and, when `gathered`,
/// the narrow side `W · unfold(wide)` from the same unfolding (a transposed convolution's
/// input gradient).
fn weight_grad(
    s: &Strided,
    wide: &[f32],
    narrow: &[f32],
    gathered: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let (p, taps) = (s.positions(), s.taps());
    let per_image = if gathered.is_some() { s.narrow() } else { 0 };
    let (out, partials) = run_tasks(s, per_image, |t, out| {
        let mut cols = vec![0f32; taps * p];
        let mut dw = vec![0f32; s.o * taps];
        for (j, i) in s.task_images(t).enumerate() {
            unfold(s, &wide[i * s.wide()..(i + 1) * s.wide()], &mut cols);
            let n = &narrow[i * s.narrow()..(i + 1) * s.narrow()];
            product(&mut dw, j > 0, n, false, &cols, true, [s.o, taps, p]);
            if let Some(weight) = gathered {
                let y = &mut out[j * s.narrow()..(j + 1) * s.narrow()];
                product(y, false, weight, false, &cols, false, [s.o, p, taps]);
            }
        }
        dw
    });
    (out, sum_in_order(partials, s.o * taps))
}

fn tensor(v: Vec<f32>, dims: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, dims))
}

/// A strided convolution's forward pass: `x [b, c, h, w]` → `[b, o, oh, ow]`.
pub(crate) fn strided_forward(x: &FlexTensor, weight: &FlexTensor, at: [usize; 2]) -> FlexTensor {
    let (dims, v) = values(x);
    let (wd, wt) = values(weight);
    let s = Strided::conv(&dims, &wd, at);
    tensor(gather(&s, &v, &wt), [s.b, s.o, s.oh, s.ow])
}

/// A strided convolution's gradients from its output gradient: dx when `want[0]`, dW when
/// `want[1]`.
pub(crate) fn strided_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    [want_dx, want_dw]: [bool; 2],
    at: [usize; 2],
) -> [Option<FlexTensor>; 2] {
    let (dims, v) = values(x);
    let (wd, wt) = values(weight);
    let (_, g) = values(grad);
    let s = Strided::conv(&dims, &wd, at);
    let dx = want_dx.then(|| tensor(spread(&s, &g, &wt), [s.b, s.c, s.h, s.w]));
    let dw = want_dw.then(|| tensor(weight_grad(&s, &v, &g, None).1, [s.o, s.c, s.k, s.k]));
    [dx, dw]
}

/// A strided transposed convolution's forward pass: `x [b, o, oh, ow]` → `[b, c, h, w]`.
pub(crate) fn transposed_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    at: [usize; 2],
) -> FlexTensor {
    let (dims, v) = values(x);
    let (wd, wt) = values(weight);
    let s = Strided::transposed(&dims, &wd, at);
    tensor(spread(&s, &v, &wt), [s.b, s.c, s.h, s.w])
}

/// A strided transposed convolution's gradients from its output gradient: dx when `want[0]`,
/// dW when `want[1]` (both from one unfolding of the output gradient).
pub(crate) fn transposed_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    [want_dx, want_dw]: [bool; 2],
    at: [usize; 2],
) -> [Option<FlexTensor>; 2] {
    let (dims, v) = values(x);
    let (wd, wt) = values(weight);
    let (_, g) = values(grad);
    let s = Strided::transposed(&dims, &wd, at);
    let narrow = [s.b, s.o, s.oh, s.ow];
    if !want_dw {
        return [want_dx.then(|| tensor(gather(&s, &g, &wt), narrow)), None];
    }
    let (dx, dw) = weight_grad(&s, &g, &v, want_dx.then_some(&wt[..]));
    [
        want_dx.then(|| tensor(dx, narrow)),
        Some(tensor(dw, [s.o, s.c, s.k, s.k])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

    #[test]
    fn shapes_without_an_output_go_back_to_the_caller() {
        let device = Device::flex();
        // a 2 × 3 image under a 4 × 4 kernel without padding: no output position
        let x = noise([1, 1, 2, 3], 1, -1.0, 1.0, &device);
        let w = noise([1, 1, 4, 4], 2, -1.0, 1.0, &device);
        assert!(conv_strided(x, w, 1, 0).is_err());
        // transposed, a row of one: 0·2 + 2 − 2·1 = 0 columns out (the rows would fit)
        let x = noise([1, 1, 3, 1], 1, -1.0, 1.0, &device);
        let w = noise([1, 1, 2, 2], 2, -1.0, 1.0, &device);
        assert!(conv_transpose_strided(x, w, 2, 1).is_err());
    }

    #[test]
    fn strided_convolutions_and_their_transposes_equal_burns() {
        let device = Device::flex().autodiff();
        // (transposed, channels in → out, kernel, stride, padding, side): the GAN's and the
        // patch discriminator's 4 × 4 / 2 / 1 (an odd side, whose last row no output reads),
        // the U-Net's 2 × 2 / 2 transposed, a stride of 3 with padding 2, a stride of 1
        for (transposed, [ci, co], [k, stride, pad], side) in [
            (false, [3, 5], [4, 2, 1], [14, 14]),
            (false, [4, 6], [4, 2, 1], [7, 9]),
            (false, [2, 3], [3, 3, 2], [10, 8]),
            (false, [2, 3], [3, 1, 1], [5, 6]),
            (true, [6, 4], [4, 2, 1], [7, 7]),
            (true, [5, 3], [2, 2, 0], [4, 6]),
            (true, [3, 2], [3, 3, 2], [4, 5]),
        ] {
            // 11 images: tasks of 8 and 3, their partial sums added
            let x = noise([11, ci, side[0], side[1]], 3, -1.0, 1.0, &device);
            let wt = if transposed {
                noise([ci, co, k, k], 4, -0.5, 0.5, &device)
            } else {
                noise([co, ci, k, k], 4, -0.5, 0.5, &device)
            };
            let run = |ours: bool| {
                let (x, wt) = (
                    x.clone().detach().require_grad(),
                    wt.clone().detach().require_grad(),
                );
                let y = match (ours, transposed) {
                    (true, false) => conv_strided(x.clone(), wt.clone(), stride, pad).unwrap(),
                    (true, true) => {
                        conv_transpose_strided(x.clone(), wt.clone(), stride, pad).unwrap()
                    }
                    (false, false) => {
                        let o = ConvOptions::new([stride; 2], [pad; 2], [1, 1], 1);
                        burn::tensor::module::conv2d(x.clone(), wt.clone(), None, o)
                    }
                    (false, true) => {
                        let o = ConvTransposeOptions::new([stride; 2], [pad; 2], [0, 0], [1, 1], 1);
                        burn::tensor::module::conv_transpose2d(x.clone(), wt.clone(), None, o)
                    }
                };
                let mix = noise(y.dims(), 5, -1.0, 1.0, &device);
                let grads = (y.clone() * mix).sum().backward();
                [
                    host(y),
                    host(x.grad(&grads).unwrap()),
                    host(wt.grad(&grads).unwrap()),
                ]
            };
            let (ours, theirs) = (run(true), run(false));
            let case = format!(
                " (transposed {transposed}, {ci}→{co}, k {k}, stride {stride}, padding {pad})"
            );
            assert_close(&["output", "dx", "dw"], &ours, &theirs, 1e-4, &case);
        }
    }
}
