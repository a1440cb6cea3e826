//! fovea's kernels for Burn's flex backend, through Burn's backend-extension API: each op's forward
//! pass, and its backward pass for autodiff.
//!
//! A model calls an op's entry function with Burn tensors: `max_pool_2x2`, `conv_same`,
//! `conv_unfolded`, `conv_strided`, `conv_transpose_strided`, `batch_norm_train`,
//! `batch_norm_eval`, `dropout`, `linear`, `relu`, `leaky_relu`, `tanh`, and the recurrent layers
//! `lstm`, `bi_lstm`, `gru`, `bi_gru`; an optimizer is `FusedAdam`. On flex the kernel runs; on any
//! other backend the entry function hands the tensors back (or runs Burn's own layer), so the
//! caller keeps Burn's op there. What each kernel computes equals Burn's op, tested against it in
//! the op's file.
//!
//! One file per op: `pool` (2 × 2 max pooling), `direct` (a "same" convolution computed directly,
//! for few input channels), `unfolded` (the same convolution as unfold + matrix product, image by
//! image), `winograd` (its 3 × 3 kernels by Winograd's F(2×2, 3×3)), `conv` (what the three
//! convolutions share), `strided` (a convolution of any stride and symmetric padding, and its
//! transpose, as unfold + matrix product), `activation` (ReLU, leaky ReLU and tanh, their gradient
//! from the kept output), `batch_norm`, `norm_pool` (batch norm and 2 × 2 pooling in one pass),
//! `dense` (fully connected layers), `recurrent` (an LSTM or GRU direction as one op: the time loop
//! with its gates in one pass per step), `dropout` and `adam` (Adam's step in one pass). `compare`
//! is the comparison their parity tests use. `extension` declares the ops, `flex` implements them
//! on plain flex and `autodiff` on autodiff flex with their backward nodes; `simd` holds what every
//! kernel's inner loops use.
//!
//! The crate imports nothing of fovea: it is a backend extension that any Burn program on flex can
//! use. Results never depend on the thread count: work is cut into tasks of a fixed size, and
//! partial sums are added in task order.

#[macro_use]
mod simd;

mod activation;
mod adam;
mod autodiff;
mod batch_norm;
mod compare;
mod conv;
mod dense;
mod direct;
mod dropout;
mod extension;
mod flex;
mod norm_pool;
mod pool;
mod recurrent;
mod strided;
#[cfg(test)]
mod testing;
mod unfolded;
mod winograd;

pub use activation::{leaky_relu, relu, tanh};
pub use adam::FusedAdam;
pub use batch_norm::{batch_norm_eval, batch_norm_train};
pub use compare::max_difference;
pub use dense::linear;
pub use direct::conv_same;
pub use dropout::dropout;
pub use extension::{Cell, FlexKernels};
pub use pool::max_pool_2x2;
pub use recurrent::{bi_gru, bi_lstm, gru, lstm};
pub use strided::{conv_strided, conv_transpose_strided};
pub use unfolded::conv_unfolded;
