//! ReLU, leaky ReLU and tanh in one pass each way. Burn's ReLUs build a mask, then select
//! (forward), and select again on the gradient (backward); here the forward pass is one loop,
//! and the backward pass reads the kept output (which has the input's sign) instead of a mask.
//! Burn's tanh on flex runs value by value on the calling thread; here it is vectorized, in
//! tasks side by side, and its gradient is one pass from the kept output.

use burn::backend::Dispatch;
use burn::prelude::*;

use crate::extension::{FlexKernels, FlexTensor, on_flex};
use crate::simd::{self, elementwise};

/// Leaky ReLU of `x` (`x` where positive, `slope`·x elsewhere; ReLU at slope 0): fovea's
/// kernel on flex, Burn's function anywhere else.
pub fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
    if !on_flex(&x) {
        return if slope == 0.0 {
            burn::tensor::activation::relu(x)
        } else {
            burn::tensor::activation::leaky_relu(x, slope)
        };
    }
    Tensor::from_dispatch(<Dispatch as FlexKernels>::leaky_relu(
        x.into_dispatch(),
        slope,
    ))
}

/// ReLU of `x`: `leaky_relu` at slope 0.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    leaky_relu(x, 0.0)
}

/// tanh of `x`: fovea's kernel on flex (within 2e-7 of Burn's: `simd::tanh`), Burn's function
/// anywhere else.
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex(&x) {
        return burn::tensor::activation::tanh(x);
    }
    Tensor::from_dispatch(<Dispatch as FlexKernels>::tanh(x.into_dispatch()))
}

simd_fn! {
    /// The forward pass of one run: `x` where positive, `slope`·x elsewhere (+0, not −0, at
    /// slope 0; a NaN stays NaN).
    fn forward_run(x: &[f32], out: &mut [f32], slope: f32) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = if v > 0.0 { v } else { v * slope + 0.0 };
        }
    }
}

simd_fn! {
    /// The backward pass of one run, from the forward pass's output `y`: the gradient where
    /// the output is positive, `slope` times it elsewhere (+0 at slope 0).
    fn backward_run(y: &[f32], grad: &[f32], out: &mut [f32], slope: f32) {
        for ((o, &v), &g) in out.iter_mut().zip(y).zip(grad) {
            *o = if v > 0.0 { g } else { g * slope + 0.0 };
        }
    }
}

simd_fn! {
    /// tanh of one run.
    fn tanh_run(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = simd::tanh(v);
        }
    }
}

simd_fn! {
    /// tanh's backward pass of one run from its output `y`: the gradient times 1 − y², as
    /// Burn's autodiff computes it.
    fn tanh_backward_run(y: &[f32], grad: &[f32], out: &mut [f32]) {
        for ((o, &v), &g) in out.iter_mut().zip(y).zip(grad) {
            *o = g * (1.0 - v * v);
        }
    }
}

/// tanh's forward pass.
pub(crate) fn tanh_forward(x: &FlexTensor) -> FlexTensor {
    elementwise([x], |_, [x], out| tanh_run(x, out))
}

/// tanh's input gradient from its output `y` and the output gradient.
pub(crate) fn tanh_backward(y: &FlexTensor, grad: &FlexTensor) -> FlexTensor {
    elementwise([y, grad], |_, [y, g], out| tanh_backward_run(y, g, out))
}

/// Leaky ReLU's forward pass.
pub(crate) fn activation_forward(x: &FlexTensor, slope: f64) -> FlexTensor {
    elementwise([x], |_, [x], out| forward_run(x, out, slope as f32))
}

/// Leaky ReLU's input gradient from its output `y` and the output gradient.
pub(crate) fn activation_backward(y: &FlexTensor, slope: f64, grad: &FlexTensor) -> FlexTensor {
    elementwise([y, grad], |_, [y, g], out| {
        backward_run(y, g, out, slope as f32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn relu_and_leaky_relu_and_their_gradients_equal_burns() {
        let device = Device::flex().autodiff();
        // more values than one task: the runs' seams are covered
        let x = noise([3, 7, 1000], 11, -1.0, 1.0, &device);
        let mix = noise([3, 7, 1000], 12, -1.0, 1.0, &device);
        for slope in [0.0, 0.2] {
            let run = |ours: bool| {
                let x = x.clone().detach().require_grad();
                let y = match (ours, slope == 0.0) {
                    (true, _) => leaky_relu(x.clone(), slope),
                    (false, true) => burn::tensor::activation::relu(x.clone()),
                    (false, false) => burn::tensor::activation::leaky_relu(x.clone(), slope),
                };
                let grads = (y.clone() * mix.clone()).sum().backward();
                [host(y), host(x.grad(&grads).unwrap())]
            };
            let (ours, theirs) = (run(true), run(false));
            for (what, (a, b)) in ["output", "gradient"].iter().zip(ours.iter().zip(&theirs)) {
                // bit for bit
                let differ = a
                    .iter()
                    .zip(b)
                    .position(|(p, q)| p.to_bits() != q.to_bits());
                assert_eq!(
                    differ, None,
                    "{what} at slope {slope}: first differing value"
                );
            }
        }
        // inference: the same values without a graph
        let plain = x.clone().inner();
        let (ours, theirs) = (
            host(relu(plain.clone())),
            host(burn::tensor::activation::relu(plain)),
        );
        assert!(ours == theirs, "inference differs");
    }

    #[test]
    fn tanh_and_its_gradient_agree_with_burns() {
        let device = Device::flex().autodiff();
        // more values than one task, and from the polynomial's range far into saturation
        let x = noise([3, 7, 1000], 13, -6.0, 6.0, &device);
        let mix = noise([3, 7, 1000], 14, -1.0, 1.0, &device);
        let run = |ours: bool| {
            let x = x.clone().detach().require_grad();
            let y = if ours {
                tanh(x.clone())
            } else {
                burn::tensor::activation::tanh(x.clone())
            };
            let grads = (y.clone() * mix.clone()).sum().backward();
            [host(y), host(x.grad(&grads).unwrap())]
        };
        let names = ["output", "gradient"];
        assert_close(&names, &run(true), &run(false), 5e-7, "");
        // inference: the same values without a graph
        let plain = x.clone().inner();
        let ours = host(tanh(plain.clone()));
        let theirs = host(burn::tensor::activation::tanh(plain));
        assert_close(&["output"], &[ours], &[theirs], 5e-7, " in inference");
    }
}
