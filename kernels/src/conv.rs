//! What fovea's "same" convolutions of stride 1 share (`direct`, `unfolded`, `winograd`): their
//! shapes, tasks of a fixed number of images (so results do not depend on the thread count),
//! the taps' reach at the border, and the single-threaded matrix product they call.

use burn::tensor::ops::ConvOptions;

use crate::extension::FlexTensor;

pub(crate) fn same_options(weight: &FlexTensor) -> ConvOptions<2> {
    let dims = weight.layout().shape();
    ConvOptions::new([1, 1], [dims[2] / 2, dims[3] / 2], [1, 1], 1)
}

/// The element-wise sum of per-task partial results, in task order.
pub(crate) fn sum_in_order(partials: Vec<Vec<f32>>, n: usize) -> Vec<f32> {
    let mut total = vec![0f32; n];
    for part in &partials {
        for (t, p) in total.iter_mut().zip(part) {
            *t += p;
        }
    }
    total
}

/// The sums of the columns of `m`, a row-major matrix `width` wide, row after row.
pub(crate) fn column_sums(m: &[f32], width: usize) -> Vec<f32> {
    let mut sums = vec![0f32; width];
    for row in m.chunks_exact(width.max(1)) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
    sums
}

/// For tap column `kx` of a "same" convolution (half-width `pw`, image width `w`): the output
/// columns `x0..x1` whose input column x + kx − pw lies inside the image, or `None`.
pub(crate) fn tap_columns(kx: usize, pw: usize, w: usize) -> Option<(usize, usize)> {
    let x0 = pw.saturating_sub(kx);
    let x1 = (w + pw).saturating_sub(kx).min(w);
    (x0 < x1).then_some((x0, x1))
}

/// For tap row `ky` (half-height `ph`, image height `h`): the input row that output row `y`
/// reads, or `None` outside the image.
pub(crate) fn tap_row(y: usize, ky: usize, ph: usize, h: usize) -> Option<usize> {
    let sy = y + ky;
    (sy >= ph && sy - ph < h).then(|| sy - ph)
}

/// Images per task of the per-image convolution: fixed, not the thread count, so that the weight
/// gradient's partial sums (one per task, added in task order), and hence the result, are the
/// same on any number of threads.
pub(crate) const IMAGES_PER_TASK: usize = 8;

/// The shapes of a "same" convolution of stride 1: input `[b, c, h, w]`, weights `[o, c, kh, kw]`.
#[derive(Clone, Copy)]
pub(crate) struct Same {
    pub(crate) b: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) o: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
}

impl Same {
    pub(crate) fn new(x: &[usize], weight: &[usize]) -> Self {
        let [b, c, h, w] = [x[0], x[1], x[2], x[3]];
        let [o, kh, kw] = [weight[0], weight[2], weight[3]];
        Same {
            b,
            c,
            h,
            w,
            o,
            kh,
            kw,
        }
    }

    pub(crate) fn plane(&self) -> usize {
        self.h * self.w
    }

    /// A 3 × 3 kernel: the one Winograd's F(2×2, 3×3) computes.
    pub(crate) fn is_3x3(&self) -> bool {
        self.kh == 3 && self.kw == 3
    }

    /// Rows of one image's unfolding, `c·k²`: the weight matrix's inner dimension.
    pub(crate) fn taps(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Row `row` of the unfolding: its (input channel, ky, kx), in the weights' order.
    pub(crate) fn tap(&self, row: usize) -> (usize, usize, usize) {
        let k2 = self.kh * self.kw;
        (row / k2, row / self.kw % self.kh, row % self.kw)
    }

    /// The images of task `t` (see `IMAGES_PER_TASK`).
    pub(crate) fn task_images(&self, t: usize) -> std::ops::Range<usize> {
        t * IMAGES_PER_TASK..self.b.min((t + 1) * IMAGES_PER_TASK)
    }

    pub(crate) fn tasks(&self) -> usize {
        self.b.div_ceil(IMAGES_PER_TASK)
    }
}

/// `dst [m, n] = a · b`, or `dst += a · b` when `accumulate`; all row-major f32. `a` is stored
/// `[m, k]`, or `[k, m]` and used transposed when `a_t`; `b` is `[k, n]`, or `[n, k]` used
/// transposed when `b_t` (strides, no copies). One thread: the callers run images side by side.
#[allow(clippy::too_many_arguments)]
pub(crate) fn product(
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    [m, n, k]: [usize; 3],
) {
    assert!(dst.len() == m * n && a.len() == m * k && b.len() == k * n);
    // (row stride, column stride) of each operand as the product reads it
    let (a_rs, a_cs) = if a_t { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if b_t { (1, k) } else { (n, 1) };
    // SAFETY: the lengths asserted above cover every index the strides reach: (m − 1, k − 1) of
    // `a`, (k − 1, n − 1) of `b` and (m − 1, n − 1) of `dst`, which no other reference aliases.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use crate::{conv_same, conv_unfolded};
    use burn::prelude::*;
    use burn::tensor::ops::ConvOptions;

    #[test]
    fn the_convolution_and_its_gradients_equal_burns() {
        let device = Device::flex().autodiff();
        // both of fovea's convolutions: computed directly, and unfolded into one product (3 × 3
        // kernels by Winograd's F(2×2, 3×3) instead: on a 7 × 5 plane, tiles cut short both
        // ways; on a 6 × 18 plane, rows of 10 tiles (a run of 8 lanes and two more))
        for (unfolded, [c, o, k], [h, w]) in [
            (false, [1, 4, 3], [7, 5]),
            (false, [3, 5, 5], [7, 5]),
            (true, [1, 4, 3], [7, 5]),
            (true, [9, 7, 3], [7, 5]),
            (true, [9, 7, 3], [6, 18]),
            (true, [6, 5, 5], [7, 5]),
        ] {
            // 11 images: the unfolded kernel's tasks of 8 and 3, their partial sums added
            let x = noise([11, c, h, w], 7, -1.0, 1.0, &device);
            let wt = noise([o, c, k, k], 8, -0.5, 0.5, &device);
            let mix = noise([11, o, h, w], 9, -1.0, 1.0, &device);
            let run = |ours: bool| {
                let (x, wt) = (
                    x.clone().detach().require_grad(),
                    wt.clone().detach().require_grad(),
                );
                let y = if ours && unfolded {
                    conv_unfolded(x.clone(), wt.clone()).unwrap()
                } else if ours {
                    conv_same(x.clone(), wt.clone()).unwrap()
                } else {
                    let options = ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1);
                    burn::tensor::module::conv2d(x.clone(), wt.clone(), None, options)
                };
                let grads = (y.clone() * mix.clone()).sum().backward();
                [
                    host(y),
                    host(x.grad(&grads).unwrap()),
                    host(wt.grad(&grads).unwrap()),
                ]
            };
            let (ours, theirs) = (run(true), run(false));
            let case = format!(" ({c}→{o}, k {k}, unfolded {unfolded})");
            assert_close(&["output", "dx", "dw"], &ours, &theirs, 1e-4, &case);
        }
    }
}
