//! Fully connected layers as fovea's matrix products: rows in fixed groups side by side, no
//! zero-filled, realigned or transposed copies around the products; backward, the input and
//! weight gradients as two products run at once.

use burn::backend::Dispatch;
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use crate::conv::{column_sums, product};
use crate::extension::{FlexKernels, FlexTensor, on_flex};
use crate::simd::values;

/// `layer` (Burn's `Linear`) applied to `x [b, i]`: on flex, with a bias, as fovea's kernel
/// (`FlexKernels::dense`: no zero-filled, realigned or transposed copies around the products);
/// Burn's layer anywhere else.
pub fn linear(layer: &burn::nn::Linear, x: Tensor<2>) -> Tensor<2> {
    let Some(bias) = &layer.bias else {
        return layer.forward(x);
    };
    if !on_flex(&x) {
        return layer.forward(x);
    }
    let out = <Dispatch as FlexKernels>::dense(
        x.into_dispatch(),
        layer.weight.val().into_dispatch(),
        bias.val().into_dispatch(),
    );
    Tensor::from_dispatch(out)
}

/// Rows of `x` per task of `dense_forward`: fixed, not the thread count, so that every row goes
/// through a product of the same shape (and sums in the same order) on any number of threads.
const DENSE_ROWS: usize = 32;

/// `x [b, i] · weight [i, o] + bias`: the product per group of `DENSE_ROWS` rows, side by side,
/// then the bias added (in Burn's order: the product first).
pub(crate) fn dense_forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let (xd, xv) = values(x);
    let (wd, wv) = values(weight);
    let (_, bv) = values(bias);
    let [b, i, o] = [xd[0], xd[1], wd[1]];
    let mut out = vec![0f32; b * o];
    if o > 0 {
        out.par_chunks_mut(DENSE_ROWS * o)
            .zip(xv.par_chunks(DENSE_ROWS * i.max(1)))
            .for_each(|(y, xs)| {
                let rows = y.len() / o;
                product(y, false, &xs[..rows * i], false, &wv, false, [rows, o, i]);
                for row in y.chunks_exact_mut(o) {
                    for (v, &c) in row.iter_mut().zip(bv.iter()) {
                        *v += c;
                    }
                }
            });
    }
    FlexTensor::from_data(TensorData::new(out, [b, o]))
}

/// `dense_forward`'s gradients from the output gradient `grad [b, o]`: the input's
/// (`grad · weightᵀ`, when `want[0]`) and the weights' (`xᵀ · grad`, when `want[1]`), two
/// products of about the same size run side by side, and the bias's (column sums of `grad`).
pub(crate) fn dense_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    [want_dx, want_dw]: [bool; 2],
) -> [Option<FlexTensor>; 3] {
    let (xd, xv) = values(x);
    let (wd, wv) = values(weight);
    let (_, g) = values(grad);
    let [b, i, o] = [xd[0], xd[1], wd[1]];
    let (dx, (dw, db)) = rayon::join(
        || {
            want_dx.then(|| {
                let mut dx = vec![0f32; b * i];
                product(&mut dx, false, &g, false, &wv, true, [b, i, o]);
                FlexTensor::from_data(TensorData::new(dx, [b, i]))
            })
        },
        || {
            let dw = want_dw.then(|| {
                let mut dw = vec![0f32; i * o];
                product(&mut dw, false, &xv, true, &g, false, [i, o, b]);
                FlexTensor::from_data(TensorData::new(dw, [i, o]))
            });
            let db = column_sums(&g, o);
            (dw, FlexTensor::from_data(TensorData::new(db, [o])))
        },
    );
    [dx, dw, Some(db)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn the_dense_layer_and_its_gradients_equal_burns() {
        let device = Device::flex().autodiff();
        // more rows than a task (`DENSE_ROWS`), and not a multiple of it
        let [b, i, o] = [37, 50, 7];
        let layer = burn::nn::LinearConfig::new(i, o).init(&device);
        let x = noise([b, i], 19, -1.0, 1.0, &device);
        let weights = noise([b, o], 20, -1.0, 1.0, &device);
        let run = |ours: bool| {
            let x = x.clone().detach().require_grad();
            let y = if ours {
                linear(&layer, x.clone())
            } else {
                layer.forward(x.clone())
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let bias = layer.bias.as_ref().unwrap().val();
            [
                host(y),
                host(x.grad(&grads).unwrap()),
                host(layer.weight.val().grad(&grads).unwrap()),
                host(bias.grad(&grads).unwrap()),
            ]
        };
        let (ours, theirs) = (run(true), run(false));
        let names = ["output", "dx", "dweight", "dbias"];
        assert_close(&names, &ours, &theirs, 1e-5, "");
        // inference, without autodiff
        let plain = layer.valid();
        let x = x.inner();
        let d = worst(&host(linear(&plain, x.clone())), &host(plain.forward(x)));
        assert!(d < 1e-5, "inference differs by {d}");
    }
}
