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
//! side, and each task is one product over its images' columns side by side (`[c·k², n·oh·ow]`:
//! one image's 7 × 7 positions alone would leave the product's 16-row blocks a ragged edge);
//! the weights' gradient is summed per task, then over tasks in order, so results do not depend
//! on the thread count.

use std::mem::MaybeUninit;
use std::ops::Range;

use burn::backend::Dispatch;
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use crate::conv::{IMAGES_PER_TASK, product, sum_in_order};
use crate::extension::{FlexKernels, FlexTensor, on_flex};
use crate::simd::{values, written};

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

    /// The sides of the phases of a wide plane padded on every side: `stride²` planes, phase
    /// (qy, qx) holding the padded plane's values at rows a·stride + qy, columns b·stride + qx.
    /// Tap (ky, kx) reads phase (ky mod stride, kx mod stride) from row ky / stride and column
    /// kx / stride on, one step per narrow position: its reads are a copy of rows, with no
    /// bounds to check and no stride.
    fn phase_sides(&self) -> [usize; 2] {
        let side = |n: usize| (n + 2 * self.pad).div_ceil(self.stride);
        [side(self.h), side(self.w)]
    }

    /// Values of the phases together, and 8 more that `copy_rows` may read past the last.
    fn phases_len(&self) -> usize {
        let [r, c] = self.phase_sides();
        self.stride * self.stride * r * c + 8
    }

    /// Where the wide plane's values and the taps' reads lie in the phases.
    fn phase_layout(&self) -> PhaseLayout {
        let ([rows, cols], st) = (self.phase_sides(), self.stride);
        let phase = rows * cols;
        // along a side, wide value `n` lies in phase (n + pad) mod stride, at (n + pad) / stride
        let at = |n: usize, step: usize, len: usize| {
            let p = n + self.pad;
            (p % st) * len + (p / st) * step
        };
        let starts = (0..self.k * self.k).map(|t| {
            let (ky, kx) = (t / self.k, t % self.k);
            ((ky % st) * st + kx % st) * phase + (ky / st) * cols + kx / st
        });
        PhaseLayout {
            rows: (0..self.h).map(|r| at(r, cols, st * phase)).collect(),
            columns: (0..self.w).map(|c| at(c, 1, phase)).collect(),
            starts: starts.collect(),
            width: cols,
            stride: st,
        }
    }

    fn task_images(&self, t: usize) -> Range<usize> {
        t * IMAGES_PER_TASK..self.b.min((t + 1) * IMAGES_PER_TASK)
    }
}

/// Offsets into a wide plane's phases (see `Strided::phase_sides`): of each wide row and each
/// wide column (a value's offset is its row's plus its column's), and of each tap's first read
/// (ky·k + kx); `width` is a phase's row length.
struct PhaseLayout {
    rows: Vec<usize>,
    columns: Vec<usize>,
    starts: Vec<usize>,
    width: usize,
    stride: usize,
}

thread_local! {
    /// A task's unfolding, its narrow side as rows and one plane's phases, kept per thread
    /// between calls (grown, never zeroed: every value is written before it is read).
    static STRIDED_SCRATCH: std::cell::RefCell<Vec<f32>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A task's scratch: `cols [c·k², n·p]` (its `n` images' unfoldings side by side), `rows
/// [o, n·p]` (their narrow sides likewise) and `phases` (one wide plane's).
struct Scratch<'a> {
    cols: &'a mut [f32],
    rows: &'a mut [f32],
    phases: &'a mut [f32],
}

/// `f` on the per-thread scratch cut for a task of `n` images.
fn with_scratch<R>(s: &Strided, n: usize, f: impl FnOnce(Scratch) -> R) -> R {
    let (cols, rows) = (s.taps() * n * s.positions(), s.o * n * s.positions());
    let all = cols + rows + s.phases_len();
    STRIDED_SCRATCH.with_borrow_mut(|buf| {
        if buf.len() < all {
            buf.resize(all, 0.0);
        }
        let (cols, rest) = buf[..all].split_at_mut(cols);
        let (rows, phases) = rest.split_at_mut(rows);
        f(Scratch { cols, rows, phases })
    })
}

/// `out [rows, w]` from rows of `src` `step` apart: 8 values at a time (one vector move), each
/// row's last 8 running into the next row, which is written after it; one by one where a run
/// would leave `out`. `src` holds 8 values past the last row's end.
#[inline(always)]
fn copy_rows(out: &mut [f32], src: &[f32], w: usize, step: usize) {
    let n = out.len();
    for (y, to) in (0..n).step_by(w).enumerate() {
        let from = y * step;
        let mut x = 0;
        while x < w {
            if to + x + 8 <= n {
                let run: &[f32; 8] = src[from + x..from + x + 8].try_into().expect("8 values");
                out[to + x..to + x + 8].copy_from_slice(run);
                x += 8;
            } else {
                out[to + x] = src[from + x];
                x += 1;
            }
        }
    }
}

/// One wide plane `[h, w]` into its padded phases, zero where padding.
#[inline(always)]
fn split(at: &PhaseLayout, plane: &[f32], phases: &mut [f32]) {
    phases.fill(0.0);
    for (row, &base) in plane.chunks_exact(at.columns.len()).zip(&at.rows) {
        let dst = &mut phases[base..];
        match two_phases(at, dst) {
            // stride 2: the row's even and odd columns, each a run in its own phase
            Some((even, odd)) => {
                let pairs = row.chunks_exact(2);
                if let [last] = pairs.remainder() {
                    even[row.len() / 2] = *last;
                }
                for ((e, o), two) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
                    *e = two[0];
                    *o = two[1];
                }
            }
            None => {
                for (&v, &c) in row.iter().zip(&at.columns) {
                    dst[c] = v;
                }
            }
        }
    }
}

/// The inverse of `split`: the wide plane's values from its phases, every one written.
#[inline(always)]
fn merge(at: &PhaseLayout, phases: &mut [f32], plane: &mut [MaybeUninit<f32>]) {
    for (row, &base) in plane.chunks_exact_mut(at.columns.len()).zip(&at.rows) {
        let src = &mut phases[base..];
        match two_phases(at, src) {
            Some((even, odd)) => {
                let half = row.len() / 2;
                let mut pairs = row.chunks_exact_mut(2);
                for ((two, &e), &o) in (&mut pairs).zip(&*even).zip(&*odd) {
                    two[0].write(e);
                    two[1].write(o);
                }
                if let [last] = pairs.into_remainder() {
                    last.write(even[half]);
                }
            }
            None => {
                for (o, &c) in row.iter_mut().zip(&at.columns) {
                    o.write(src[c]);
                }
            }
        }
    }
}

/// For a stride of 2, a wide row's runs in its two phases from the row's offset on (`row`
/// holding its phases from there): even columns from `columns[0]`, odd ones from `columns[1]`,
/// one step apart.
#[inline(always)]
fn two_phases<'a>(at: &PhaseLayout, row: &'a mut [f32]) -> Option<(&'a mut [f32], &'a mut [f32])> {
    let [e, o] = *at.columns.get(..2)? else {
        return None;
    };
    if at.stride != 2 {
        return None;
    }
    let (evens, odds) = (at.columns.len().div_ceil(2), at.columns.len() / 2);
    // the two phases lie apart: whichever comes first ends before the other begins
    if e < o {
        let (first, second) = row.split_at_mut(o);
        Some((&mut first[e..][..evens], &mut second[..odds]))
    } else {
        let (first, second) = row.split_at_mut(e);
        Some((&mut second[..evens], &mut first[o..][..odds]))
    }
}

/// Eight lanes kept (all ones) then eight dropped: `[8 − k..][..8]` keeps the first `k`.
const LANE_MASKS: [u32; 16] = {
    let mut masks = [0; 16];
    let mut lane = 0;
    while lane < 8 {
        masks[lane] = u32::MAX;
        lane += 1;
    }
    masks
};
const NEGATIVE_ZERO: u32 = 0x8000_0000;

/// `acc` row y (from `y·step`) plus `d` row y (from `y·w`), for `rows` rows of `w` values: 8
/// values at a time, the last part of a row too, its lanes past the row adding −0.0 (which
/// leaves every value as it is); one by one where `d` ends within 8 values. `acc` holds 8
/// values past its last row's end.
#[inline(always)]
fn add_rows(acc: &mut [f32], d: &[f32], [rows, w]: [usize; 2], step: usize) {
    for y in 0..rows {
        let (a, src) = (&mut acc[y * step..], &d[y * w..]);
        let mut x = 0;
        while x < w {
            let left = w - x;
            let Some(v) = src.get(x..x + 8) else {
                for (a, &g) in a[x..w].iter_mut().zip(&src[x..w]) {
                    *a += g;
                }
                break;
            };
            // all ones in the lanes within the row: a value's own bits there, −0.0's past it
            let keep = &LANE_MASKS[8 - left.min(8)..][..8];
            let a: &mut [f32; 8] = (&mut a[x..x + 8]).try_into().expect("8 values");
            for ((a, &g), &m) in a.iter_mut().zip(v).zip(keep) {
                *a += f32::from_bits((g.to_bits() & m) | (!m & NEGATIVE_ZERO));
            }
            x += 8;
        }
    }
}

simd_fn! {
    /// A task's `n` images' wide sides `[n, c, h, w]` unfolded into `cols [c·k², n·p]`: row
    /// (channel, ky, kx) holds, image after image, for every narrow position the wide value that
    /// tap reads, zero outside the image. Every value of `cols` is written.
    fn unfold(s: &Strided, images: &[f32], at: &PhaseLayout, cols: &mut [f32], phases: &mut [f32]) {
        let (plane, p, k2) = (s.h * s.w, s.positions(), s.k * s.k);
        let n = images.len() / s.wide();
        for (j, image) in images.chunks_exact(s.wide()).enumerate() {
            for (ch, src) in image.chunks_exact(plane).enumerate() {
                split(at, src, phases);
                for (t, &start) in at.starts.iter().enumerate() {
                    let out = &mut cols[((ch * k2 + t) * n + j) * p..][..p];
                    copy_rows(out, &phases[start..], s.ow, at.width);
                }
            }
        }
    }
}

simd_fn! {
    /// The inverse of `unfold` for gradients and transposed convolutions: `cols [c·k², n·p]`
    /// summed back onto the `n` images' wide sides `[n, c, h, w]` (each wide value receives
    /// every tap that reads it, in tap order); every value of `images` is written.
    fn fold(
        s: &Strided,
        cols: &[f32],
        at: &PhaseLayout,
        images: &mut [MaybeUninit<f32>],
        phases: &mut [f32],
    ) {
        let (plane, p, k2) = (s.h * s.w, s.positions(), s.k * s.k);
        let n = images.len() / s.wide();
        for (j, image) in images.chunks_exact_mut(s.wide()).enumerate() {
            for (ch, dst) in image.chunks_exact_mut(plane).enumerate() {
                phases.fill(0.0);
                for (t, &start) in at.starts.iter().enumerate() {
                    let d = &cols[((ch * k2 + t) * n + j) * p..];
                    add_rows(&mut phases[start..], d, [s.oh, s.ow], at.width);
                }
                merge(at, phases, dst);
            }
        }
    }
}

/// A task's narrow sides `[n, o, p]` as the rows `[o, n·p]` the products read (`to_rows`), and
/// back (`from_rows`).
fn to_rows(s: &Strided, narrow: &[f32], rows: &mut [f32]) {
    let p = s.positions();
    let n = narrow.len() / s.narrow();
    for (image, x) in narrow.chunks_exact(s.narrow()).enumerate() {
        for (ch, plane) in x.chunks_exact(p).enumerate() {
            rows[(ch * n + image) * p..][..p].copy_from_slice(plane);
        }
    }
}

fn from_rows(s: &Strided, rows: &[f32], narrow: &mut [MaybeUninit<f32>]) {
    let p = s.positions();
    let n = narrow.len() / s.narrow();
    for (image, x) in narrow.chunks_exact_mut(s.narrow()).enumerate() {
        for (ch, plane) in x.chunks_exact_mut(p).enumerate() {
            plane.write_copy_of_slice(&rows[(ch * n + image) * p..][..p]);
        }
    }
}

/// Runs `task(images, out)` for every task side by side, `images` the task's images and `out`
/// its part of an output of `per_image` values per image (empty when `per_image` is 0); returns
/// the output and the tasks' results in task order.
///
/// # Safety
/// `task` must write every value of its `out`.
unsafe fn run_tasks<R: Send>(
    s: &Strided,
    per_image: usize,
    task: impl Fn(Range<usize>, &mut [MaybeUninit<f32>]) -> R + Sync,
) -> (Vec<f32>, Vec<R>) {
    let tasks = s.b.div_ceil(IMAGES_PER_TASK);
    let mut results = Vec::new();
    let fill = |out: &mut [MaybeUninit<f32>]| {
        results = if per_image == 0 {
            (0..tasks)
                .into_par_iter()
                .map(|t| task(s.task_images(t), &mut []))
                .collect()
        } else {
            out.par_chunks_mut(IMAGES_PER_TASK * per_image)
                .enumerate()
                .map(|(t, part)| task(s.task_images(t), part))
                .collect()
        };
    };
    // SAFETY: the tasks' parts cover the output, and each task writes all of its part (the
    // caller's promise)
    let out = unsafe { written(s.b * per_image, fill) };
    (out, results)
}

/// The narrow side from the wide one, `W · unfold(wide)` (a convolution's forward pass, a
/// transposed convolution's input gradient): one product per task, its images side by side.
fn gather(s: &Strided, wide: &[f32], weight: &[f32]) -> Vec<f32> {
    let (p, taps, layout) = (s.positions(), s.taps(), s.phase_layout());
    let task = |images: Range<usize>, out: &mut [MaybeUninit<f32>]| {
        let n = images.len();
        with_scratch(s, n, |Scratch { cols, rows, phases }| {
            let x = &wide[images.start * s.wide()..images.end * s.wide()];
            unfold(s, x, &layout, cols, phases);
            product(rows, false, weight, false, cols, false, [s.o, n * p, taps]);
            from_rows(s, rows, out);
        })
    };
    // SAFETY: `from_rows` writes every value of the task's narrow sides
    unsafe { run_tasks(s, s.narrow(), task) }.0
}

/// The wide side from the narrow one, `fold(Wᵀ · narrow)` (a transposed convolution's forward
/// pass, a convolution's input gradient): one product per task, its images side by side.
fn spread(s: &Strided, narrow: &[f32], weight: &[f32]) -> Vec<f32> {
    let (p, taps, layout) = (s.positions(), s.taps(), s.phase_layout());
    let task = |images: Range<usize>, out: &mut [MaybeUninit<f32>]| {
        let n = images.len();
        with_scratch(s, n, |Scratch { cols, rows, phases }| {
            to_rows(
                s,
                &narrow[images.start * s.narrow()..images.end * s.narrow()],
                rows,
            );
            product(cols, false, weight, true, rows, false, [taps, n * p, s.o]);
            fold(s, cols, &layout, out, phases);
        })
    };
    // SAFETY: `fold` writes every value of the task's wide sides
    unsafe { run_tasks(s, s.wide(), task) }.0
}

/// The weights' gradient `Σ narrow · unfold(wide)ᵀ` over the images (one product per task, then
/// the tasks' sums in order), and, when `gathered`, the narrow side `W · unfold(wide)` from the
/// same unfolding (a transposed convolution's input gradient).
fn weight_grad(
    s: &Strided,
    wide: &[f32],
    narrow: &[f32],
    gathered: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let (p, taps, layout) = (s.positions(), s.taps(), s.phase_layout());
    let per_image = if gathered.is_some() { s.narrow() } else { 0 };
    let task = |images: Range<usize>, out: &mut [MaybeUninit<f32>]| {
        let n = images.len();
        let mut dw = vec![0f32; s.o * taps];
        with_scratch(s, n, |Scratch { cols, rows, phases }| {
            let x = &wide[images.start * s.wide()..images.end * s.wide()];
            unfold(s, x, &layout, cols, phases);
            to_rows(
                s,
                &narrow[images.start * s.narrow()..images.end * s.narrow()],
                rows,
            );
            product(&mut dw, false, rows, false, cols, true, [s.o, taps, n * p]);
            if let Some(weight) = gathered {
                product(rows, false, weight, false, cols, false, [s.o, n * p, taps]);
                from_rows(s, rows, out);
            }
        });
        dw
    };
    // SAFETY: with `gathered`, `from_rows` writes every value of the task's narrow sides;
    // without, the output is empty
    let (out, partials) = unsafe { run_tasks(s, per_image, task) };
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
