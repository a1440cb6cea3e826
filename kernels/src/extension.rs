//! The extension trait: the ops fovea's kernels add to Burn's flex backend, each implemented
//! on plain flex (`flex.rs`) and on autodiff flex with its backward pass (`autodiff.rs`).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, backend_extension};
use burn::prelude::*;

/// A flex tensor's primitive, as the kernels read and write it.
pub(crate) type FlexTensor = FloatTensor<Flex>;

#[backend_extension(Flex, Autodiff)]
pub trait FlexKernels: Backend {
    /// `[b, c, h, w]` → `[b, c, h/2, w/2]`: the maximum of each 2 × 2 window.
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// A "same" convolution of stride 1 (odd kernel, no bias) for few input channels: forward
    /// computed directly; backward, the weight gradient by unfolding (per image, an unfold and
    /// one matrix product; the input gradient, when needed, is Burn's).
    fn conv_same(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;
    /// A "same" convolution of stride 1 (odd kernel, no bias) for many input channels. A 3 × 3
    /// kernel by Winograd's F(2×2, 3×3): forward, input gradient and weight gradient each as
    /// 16 matrix products over channels in a transform domain (2.25× fewer multiplications).
    /// Other kernels image by image: each image unfolded to `[c·k², h·w]` (a scratch that stays
    /// in cache), times the weights `[o, c·k²]`; backward, per image, the weight gradient one
    /// product with the unfolding (computed again, not kept), the input gradient one product
    /// folded back.
    fn conv_unfolded(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;
    /// A convolution of any stride and padding (square kernel, no bias): per image, the input
    /// unfolded to `[c·k², oh·ow]` times the weights `[o, c·k²]`; backward, the input gradient
    /// as `conv_transpose_strided` of the output gradient, the weight gradient one product per
    /// image with the unfolding (computed again, not kept).
    fn conv_strided(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self>;
    /// The transpose of `conv_strided` (weights `[in, out, k, k]`, Burn's layout; no output
    /// padding or bias): per image, the weights transposed times the input, folded back onto
    /// the output; backward, the input gradient as `conv_strided` of the output gradient, and
    /// the weight gradient from the same unfolding.
    fn conv_transpose_strided(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self>;
    /// Dropout that keeps each value with probability `keep` (scaled by 1/`keep`), the mask a
    /// hash of `seed` and the value's index (so the backward pass computes it again instead of
    /// keeping it, and any number of threads draws the same mask).
    fn dropout(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self>;
    /// Leaky ReLU (`x` where positive, `slope`·x elsewhere; ReLU at slope 0) in one pass;
    /// backward, one pass from the kept output.
    fn leaky_relu(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self>;
    /// tanh, vectorized; backward, one pass from the kept output.
    fn tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `[b, c, h, w]` → `[2, c]`: each channel's mean and biased variance (not differentiated).
    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Batch norm of `x` with `stats` from `batch_stats(x)`; differentiated with respect to `x`
    /// (through the statistics too), `gamma` and `beta`. With `pool`, followed by `max_pool_2x2`
    /// in the same pass: the normalized tensor is never written (nor read back by the pooling),
    /// and the backward pass's sums run over the windows' winners only (the other values get no
    /// gradient).
    fn batch_norm_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        pool: bool,
    ) -> FloatTensor<Self>;
    /// One Adam step of a parameter in one pass (Burn's `Adam` makes a dozen element-wise
    /// passes): from the parameter, its gradient and the two moments (not read on the first
    /// step), the new parameter and moments. Not differentiated.
    fn adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        terms: AdamTerms,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// A fully connected layer: `x [b, i] · weight [i, o] + bias [o]`, as fovea's matrix
    /// products (rows in fixed groups, side by side); backward, the input and weight gradients
    /// as two products run at once.
    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// One direction of a recurrent layer from a zero state: `x [b, t, i]` → `[b, t, h]`, the
    /// gates' weights stacked side by side (input `[i, g·h]` and bias `[g·h]`, hidden `[h, g·h]`
    /// and bias), read from the last step to the first when `reverse`. All steps' input
    /// products as one matrix product, then per step the hidden product and the gates in one
    /// pass; backward, the time loop backwards from the kept gates, then the weights' gradients
    /// as matrix products.
    #[allow(clippy::too_many_arguments)]
    fn recurrent(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        cell: Cell,
        reverse: bool,
    ) -> FloatTensor<Self>;
}

/// Whether `x` is an f32 tensor on flex (with or without autodiff).
pub(crate) fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    x.device().without_autodiff() == Device::flex() && x.dtype() == burn::tensor::DType::F32
}

/// The scalars of one Adam step, each computed as Burn's `Adam` computes it (in f32): the
/// moments' decay rates β₁, β₂ and their complements 1 − β₁, 1 − β₂; the bias-corrected step
/// factor √(1 − β₂ᵗ)/(1 − β₁ᵗ) and the denominator's term ε·√(1 − β₂ᵗ); the learning rate;
/// the L2 weight-decay penalty, if any; and whether this is the parameter's first step (no
/// moments yet).
#[derive(Clone, Copy, Debug)]
pub struct AdamTerms {
    pub beta_1: f32,
    pub beta_2: f32,
    pub one_minus_beta_1: f32,
    pub one_minus_beta_2: f32,
    pub factor: f32,
    pub epsilon: f32,
    pub lr: f32,
    pub decay: Option<f32>,
    pub first: bool,
}

/// The recurrent cell an op computes, and its gates in the order of the stacked weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Input, forget, cell (candidate) and output gates.
    Lstm,
    /// Update, reset and new gates (the reset applied after the hidden product, as Burn's
    /// `reset_after`).
    Gru,
}

impl Cell {
    pub(crate) fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}
