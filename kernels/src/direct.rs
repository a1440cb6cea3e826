//! A "same" convolution of stride 1 computed directly, for few input channels (the first
//! layer), where an unfold + matrix product has too short an inner dimension (9 for one
//! channel) to be efficient: every kernel tap reads one contiguous run of a zero-bordered copy of
//! the image. Backward: the input gradient is Burn's, the weight gradient the unfolded one's.

use burn::backend::ops::ModuleOps;
use burn::backend::{Dispatch, Flex};
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use crate::conv::{Same, same_options};
use crate::extension::{FlexKernels, FlexTensor, on_flex};
use crate::simd::{values, written};
use crate::unfolded::unfolded_backward;

/// A "same" convolution of stride 1 without bias on flex (see `FlexKernels::conv_same`);
/// `Err(x)` unchanged on any other backend.
pub fn conv_same(x: Tensor<4>, weight: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    if !on_flex(&x) {
        return Err(x);
    }
    let out = <Dispatch as FlexKernels>::conv_same(x.into_dispatch(), weight.into_dispatch());
    Ok(Tensor::from_dispatch(out))
}

/// `conv_forward`'s gradients: dx as Burn's (transposed convolution), dW as the unfolded
/// convolution's (per image, the unfolding times the output gradient: one matrix product).
pub(crate) fn conv_same_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    [want_dx, want_dw]: [bool; 2],
) -> [Option<FlexTensor>; 2] {
    let dx = want_dx.then(|| {
        let options = same_options(weight);
        Flex::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options)
    });
    let [_, dw] = unfolded_backward(x, weight, grad, [false, want_dw]);
    [dx, dw]
}

/// A "same" convolution of stride 1, directly, image by image: the image is copied once into a
/// zero-bordered scratch (`Padded`), where every kernel tap reads one contiguous run; each output
/// plane is then, tap after tap in weight order, that run times the tap's weight added onto an
/// accumulator (one long vectorized loop per tap). Meant for few input channels, where an
/// unfold + matrix product has too short an inner dimension (9 for one channel) to be efficient.
pub(crate) fn conv_forward(x: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
    let (dims, v) = values(x);
    let (wd, wt) = values(weight);
    let s = Same::new(&dims, &wd);
    let (plane, taps, pad) = (s.plane(), s.taps(), Padded::new(&s));
    let offsets: Vec<usize> = (0..taps).map(|t| pad.offset(s.tap(t))).collect();
    // SAFETY: each image's `o` planes of `h` rows of `w` values are all copied from `acc`
    let out = unsafe {
        written(s.b * s.o * plane, |out| {
            out.par_chunks_mut(s.o * plane)
                .zip(v.par_chunks(s.c * plane))
                .for_each_init(
                    || (vec![0f32; s.c * pad.len()], vec![0f32; pad.run()]),
                    |(padded, acc), (out, image)| {
                        pad.fill(&s, image, padded);
                        for (oc, out) in out.chunks_exact_mut(plane).enumerate() {
                            conv_taps(padded, &wt[oc * taps..(oc + 1) * taps], &offsets, acc);
                            for (o, a) in out.chunks_exact_mut(s.w).zip(acc.chunks(pad.wide)) {
                                o.write_copy_of_slice(&a[..s.w]);
                            }
                        }
                    },
                );
        })
    };
    FlexTensor::from_data(TensorData::new(out, [s.b, s.o, s.h, s.w]))
}

/// One image `[c, h, w]` of a "same" convolution with its zero border: each channel a plane of
/// `h + kh − 1` rows of `wide = w + kw − 1` values, the image at row kh/2, column kw/2. Output
/// pixel (y, x) of tap (ch, ky, kx) reads value `offset(tap) + y·wide + x`, so for one tap the
/// whole output plane, laid out `wide` apart (the `kw − 1` values after each row are not output
/// and dropped), reads one run of `run()` values.
struct Padded {
    wide: usize,
    rows: usize,
    run: usize,
}

impl Padded {
    fn new(s: &Same) -> Self {
        let wide = s.w + s.kw - 1;
        Padded {
            wide,
            rows: s.h + s.kh - 1,
            run: s.h.saturating_sub(1) * wide + s.w,
        }
    }

    /// Values of one padded channel.
    fn len(&self) -> usize {
        self.rows * self.wide
    }

    /// Values one tap reads for a whole output plane.
    fn run(&self) -> usize {
        self.run
    }

    fn offset(&self, (ch, ky, kx): (usize, usize, usize)) -> usize {
        ch * self.len() + ky * self.wide + kx
    }

    /// `image [c, h, w]` copied into `padded`, its border zero.
    fn fill(&self, s: &Same, image: &[f32], padded: &mut [f32]) {
        padded.fill(0.0);
        let (top, left) = (s.kh / 2, s.kw / 2);
        for (src, dst) in image
            .chunks_exact(s.plane())
            .zip(padded.chunks_exact_mut(self.len()))
        {
            for (y, row) in src.chunks_exact(s.w).enumerate() {
                let at = (top + y) * self.wide + left;
                dst[at..at + s.w].copy_from_slice(row);
            }
        }
    }
}

simd_fn! {
    /// `acc = Σ taps[t] · padded[offsets[t]..][..acc.len()]`, tap after tap from zero.
    fn conv_taps(padded: &[f32], taps: &[f32], offsets: &[usize], acc: &mut [f32]) {
        let n = acc.len();
        acc.fill(0.0);
        for (&tap, &at) in taps.iter().zip(offsets) {
            for (a, &p) in acc.iter_mut().zip(&padded[at..at + n]) {
                *a += tap * p;
            }
        }
    }
}
