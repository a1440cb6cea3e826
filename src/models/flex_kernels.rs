//! Kernels of fovea's own for the flex backend, through Burn's backend-extension API, each with
//! its backward pass for autodiff: 2 × 2 max pooling (stride 2), batch normalization (training
//! and inference), a "same" convolution for few input channels, computed directly forward (its
//! weight gradient by unfolding), a "same" convolution for many input channels image by image
//! as unfold + matrix product (`conv_unfolded`: forward one product per image, backward two;
//! 3 × 3 kernels by Winograd's F(2×2, 3×3) instead, forward and both gradients),
//! dropout whose mask is a hash of a seed and the index, batch norm and 2 × 2 pooling as one
//! pass (`batch_norm_apply` with `pool`), fully connected layers as fovea's products (`dense`),
//! and Adam's step in one pass (`adam_step`, for `train::optim::FusedAdam`).
//! Other backends keep Burn's operations; the backend-parity tests compare them. Each kernel's
//! inner loop is a `simd_fn!`, compiled for AVX2 + FMA as well and run so where the CPU has them.
//!
//! Why (README, "Performance"): on the reference CNN's first block (64 × 32 × 28 × 28 values)
//! flex's max pooling, a generic 3-D pooling loop, takes ~6 ms forward, fourteen times a ReLU over
//! the same tensor; batch norm runs as Burn's decomposition into a dozen element-wise passes
//! (~11 ms forward and backward); the first convolution's backward (one input channel) ~7 ms.
//! Here pooling reads each window once, and batch norm makes one pass for the statistics and one
//! for the output (two backward).
//!
//! Pooling gives the same result as Burn's `MaxPool2d` with kernel 2 and stride 2: the maximum of
//! each window, and in the backward pass the gradient goes to the first maximal pixel in reading
//! order (top-left, top-right, bottom-left, bottom-right), as Burn's pooling sends it. Batch norm
//! computes what Burn's `batch_norm_train` and its backward compute (per-channel mean and biased
//! variance over batch and pixels, y = (x − mean)/√(var + ε)·γ + β); its sums run in eight f32
//! lanes per image plane (vectorized), added up in f64.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::ops::ConvOptions;
use rayon::prelude::*;
use std::mem::MaybeUninit;

type FlexTensor = FloatTensor<Flex>;

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
    /// Dropout that keeps each value with probability `keep` (scaled by 1/`keep`), the mask a
    /// hash of `seed` and the value's index (so the backward pass computes it again instead of
    /// keeping it, and any number of threads draws the same mask).
    fn dropout(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self>;
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

/// One Adam step of a parameter on flex (f32, contiguous or not), in one pass: the new
/// parameter and moments (`moments` `None` on the parameter's first step); `Err` with the
/// inputs unchanged on any other backend.
#[allow(clippy::type_complexity)]
pub fn adam_step<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    moments: Option<(Tensor<D>, Tensor<D>)>,
    terms: AdamTerms,
) -> Result<[Tensor<D>; 3], (Tensor<D>, Tensor<D>, Option<(Tensor<D>, Tensor<D>)>)> {
    let flex = on_flex(&param) && on_flex(&grad);
    if !flex
        || moments
            .as_ref()
            .is_some_and(|(m, v)| !on_flex(m) || !on_flex(v))
    {
        return Err((param, grad, moments));
    }
    // the first step reads no moments: the gradient stands in for them
    let (m, v) = moments.unwrap_or_else(|| (grad.clone(), grad.clone()));
    let (p, m, v) = <Dispatch as FlexKernels>::adam_step(
        param.into_dispatch(),
        grad.into_dispatch(),
        m.into_dispatch(),
        v.into_dispatch(),
        terms,
    );
    Ok([p, m, v].map(Tensor::from_dispatch))
}

/// Whether `x` is an f32 tensor on flex (with or without autodiff).
fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    x.device().without_autodiff() == Device::flex() && x.dtype() == burn::tensor::DType::F32
}

/// Batch norm with given statistics (inference: the running mean and variance) on flex, without
/// autodiff, then 2 × 2 max pooling in the same pass when `pool`; `Err(x)` unchanged otherwise.
pub fn batch_norm_eval(
    x: Tensor<4>,
    [gamma, beta, mean, var]: [Tensor<1>; 4],
    epsilon: f64,
    pool: bool,
) -> Result<Tensor<4>, Tensor<4>> {
    if !on_flex(&x) || x.device().is_autodiff() {
        return Err(x);
    }
    let c = mean.dims()[0];
    let stats = Tensor::cat(vec![mean, var], 0).reshape([2, c]);
    let out = <Dispatch as FlexKernels>::batch_norm_apply(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.into_dispatch(),
        epsilon,
        pool,
    );
    Ok(Tensor::from_dispatch(out))
}

/// A "same" convolution of stride 1 without bias on flex as unfold + matrix product, image by
/// image (see `FlexKernels::conv_unfolded`); `Err(x)` unchanged on any other backend.
pub fn conv_unfolded(x: Tensor<4>, weight: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    if !on_flex(&x) {
        return Err(x);
    }
    let out = <Dispatch as FlexKernels>::conv_unfolded(x.into_dispatch(), weight.into_dispatch());
    Ok(Tensor::from_dispatch(out))
}

/// A "same" convolution of stride 1 without bias on flex (see `FlexKernels::conv_same`);
/// `Err(x)` unchanged on any other backend.
pub fn conv_same(x: Tensor<4>, weight: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    if !on_flex(&x) {
        return Err(x);
    }
    let out = <Dispatch as FlexKernels>::conv_same(x.into_dispatch(), weight.into_dispatch());
    Ok(Tensor::from_dispatch(out))
}

fn same_options(weight: &FlexTensor) -> ConvOptions<2> {
    let dims = weight.layout().shape();
    ConvOptions::new([1, 1], [dims[2] / 2, dims[3] / 2], [1, 1], 1)
}

/// `layer` (Burn's dropout) applied to `x`: in training on flex, as fovea's kernel (one pass, the
/// mask drawn from a seed that the device's random generator gives, so a step seeded alike draws
/// alike); anywhere else, Burn's own (which draws a random number per value through a generic
/// sampler: ~4 ms of the reference CNN's ~45 ms step).
pub fn dropout<const D: usize>(layer: &burn::nn::Dropout, x: Tensor<D>) -> Tensor<D> {
    let active = layer.training.is_enabled() && layer.prob > 0.0 && x.device().is_autodiff();
    if !active || !on_flex(&x) {
        return layer.forward(x);
    }
    // four 16-bit draws from the device's generator make the seed (its integers may be i32)
    let below = burn::tensor::Distribution::Uniform(0.0, 65536.0);
    let seed = Tensor::<1, Int>::random([4], below, &x.device())
        .into_data()
        .convert::<i64>()
        .iter::<i64>()
        .fold(0u64, |seed, part| (seed << 16) | part as u64);
    let out = <Dispatch as FlexKernels>::dropout(x.into_dispatch(), 1.0 - layer.prob, seed);
    Tensor::from_dispatch(out)
}

/// Batch norm in training mode on flex, then 2 × 2 max pooling in the same pass when `pool`: the
/// output, and the batch's mean and biased variance (detached, for the running statistics);
/// `Err(x)` unchanged on any other backend.
pub fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    pool: bool,
) -> Result<(Tensor<4>, Tensor<1>, Tensor<1>), Tensor<4>> {
    if !on_flex(&x) {
        return Err(x);
    }
    let c = x.dims()[1];
    let stats = Tensor::<2>::from_dispatch(<Dispatch as FlexKernels>::batch_stats(
        x.clone().into_dispatch(),
    ));
    let out = <Dispatch as FlexKernels>::batch_norm_apply(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.clone().into_dispatch(),
        epsilon,
        pool,
    );
    let mean = stats.clone().slice([0..1, 0..c]).reshape([c]);
    let var = stats.slice([1..2, 0..c]).reshape([c]);
    Ok((Tensor::from_dispatch(out), mean, var))
}

/// The kernel's pooling of `x` on the flex backend (f32); `Err(x)` unchanged on any other
/// backend, which keeps Burn's pooling.
pub fn max_pool_2x2(x: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
    if !on_flex(&x) {
        return Err(x);
    }
    let out = <Dispatch as FlexKernels>::max_pool_2x2(x.into_dispatch());
    Ok(Tensor::from_dispatch(out))
}

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

impl FlexKernels for Flex {
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        pool_forward(&x, None).0
    }

    fn conv_same(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        conv_forward(&x, &weight)
    }

    fn conv_unfolded(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        conv_unfolded_forward(&x, &weight)
    }

    fn dropout(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self> {
        dropout_mask(&x, keep, seed)
    }

    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        stats(&x)
    }

    fn batch_norm_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        pool: bool,
    ) -> FloatTensor<Self> {
        if pool {
            norm_pool_forward(&x, &gamma, &beta, &stats, epsilon).0
        } else {
            norm_forward(&x, &gamma, &beta, &stats, epsilon)
        }
    }

    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        dense_forward(&x, &weight, &bias)
    }

    fn adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        terms: AdamTerms,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        adam_forward([&param, &grad, &moment_1, &moment_2], terms)
    }
}

impl<C: CheckpointStrategy> FlexKernels for Autodiff<Flex, C> {
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (out, which, _) = pool_forward(x.primitive(), None);
        let shape = x.primitive().layout().shape().to_vec();
        let dims = [shape[0], shape[1], shape[2], shape[3]];
        // kept: the input's dims and each window's winner (1 byte per output value, where
        // keeping the input would take 16 per output)
        tracked_unary::<C, _>(&x, out, (dims, which), |(dims, which), grad| {
            pool_backward(*dims, which, grad)
        })
    }

    fn conv_same(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked_same_conv::<C>(x, weight, conv_forward, conv_same_backward)
    }

    fn conv_unfolded(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked_same_conv::<C>(x, weight, conv_unfolded_forward, conv_unfolded_backward)
    }

    fn dropout(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self> {
        let out = dropout_mask(x.primitive(), keep, seed);
        // kept: `keep` and the seed, so the backward pass draws the same mask again
        tracked_unary::<C, _>(&x, out, (keep, seed), |&(keep, seed), grad| {
            dropout_mask(grad, keep, seed)
        })
    }

    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as AutodiffBackend>::from_inner(stats(x.primitive()))
    }

    fn adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        terms: AdamTerms,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let inputs = [&param, &grad, &moment_1, &moment_2].map(|t| t.primitive());
        let (p, m, v) = adam_forward(inputs, terms);
        let back = <Self as AutodiffBackend>::from_inner;
        (back(p), back(m), back(v))
    }

    fn batch_norm_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        pool: bool,
    ) -> FloatTensor<Self> {
        tracked_norm::<C>([x, gamma, beta, stats], epsilon, pool)
    }

    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Dense;

        impl Backward<Flex, 3> for Dense {
            /// The input's node and the weights.
            type State = (NodeId, FlexTensor);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let (input, weight) = ops.state;
                let input: FlexTensor = checkpointer.retrieve_node_output(input);
                let grad = grads.consume::<Flex>(&ops.node);
                let [px, pw, pb] = ops.parents;
                let want = [px.is_some(), pw.is_some()];
                let [dx, dw, db] = dense_backward(&input, &weight, &grad, want);
                for (parent, g) in [(px, dx), (pw, dw), (pb, db)] {
                    if let (Some(node), Some(g)) = (parent, g) {
                        grads.register::<Flex>(node.id, g);
                    }
                }
            }
        }

        let out = dense_forward(x.primitive(), weight.primitive(), bias.primitive());
        match Dense
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let input = prep.checkpoint(&x);
                prep.finish((input, weight.primitive().clone()), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

/// Batch norm of `x` with `stats` (`[x, γ, β, stats]`) on autodiff flex, followed by 2 × 2 max
/// pooling when `pool`; differentiated with respect to x, γ and β.
fn tracked_norm<C: CheckpointStrategy>(
    [x, gamma, beta, stats]: [FloatTensor<Autodiff<Flex, C>>; 4],
    epsilon: f64,
    pool: bool,
) -> FloatTensor<Autodiff<Flex, C>> {
    #[derive(Debug)]
    struct BatchNorm;

    impl Backward<Flex, 3> for BatchNorm {
        /// The input's node, γ, the statistics, ε, and when pooled, each window's winner and
        /// its x (1 + 4 bytes per output, a quarter of the input's size).
        type State = (
            NodeId,
            FlexTensor,
            FlexTensor,
            f64,
            Option<(Vec<u8>, Vec<f32>)>,
        );

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            checkpointer: &mut Checkpointer,
        ) {
            let (input, gamma, stats, epsilon, which) = ops.state;
            let input: FlexTensor = checkpointer.retrieve_node_output(input);
            let grad = grads.consume::<Flex>(&ops.node);
            let (dx, dgamma, dbeta) = match &which {
                Some((which, kept)) => {
                    norm_pool_backward(&input, &gamma, &stats, epsilon, (which, kept), &grad)
                }
                None => norm_backward(&input, &gamma, &stats, epsilon, &grad),
            };
            let [px, pg, pb] = ops.parents;
            for (parent, g) in [(px, dx), (pg, dgamma), (pb, dbeta)] {
                if let Some(node) = parent {
                    grads.register::<Flex>(node.id, g);
                }
            }
        }
    }

    let args = (x.primitive(), gamma.primitive(), beta.primitive());
    let (out, which) = if pool {
        let (out, which, kept) =
            norm_pool_forward(args.0, args.1, args.2, stats.primitive(), epsilon);
        (out, Some((which, kept)))
    } else {
        let out = norm_forward(args.0, args.1, args.2, stats.primitive(), epsilon);
        (out, None)
    };
    match BatchNorm
        .prepare::<C>([x.node(), gamma.node(), beta.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let input = prep.checkpoint(&x);
            let state = (
                input,
                gamma.primitive().clone(),
                stats.primitive().clone(),
                epsilon,
                which,
            );
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// A one-input kernel on autodiff flex: its output `out`, already computed, and, when the
/// gradients are computed, the input's gradient as `backward(state, output gradient)` (pooling
/// and dropout go through here).
fn tracked_unary<C: CheckpointStrategy, S: Clone + Send + std::fmt::Debug + 'static>(
    x: &FloatTensor<Autodiff<Flex, C>>,
    out: FlexTensor,
    state: S,
    backward: fn(&S, &FlexTensor) -> FlexTensor,
) -> FloatTensor<Autodiff<Flex, C>> {
    #[derive(Debug)]
    struct Unary<S>(fn(&S, &FlexTensor) -> FlexTensor);

    impl<S: Clone + Send + std::fmt::Debug + 'static> Backward<Flex, 1> for Unary<S> {
        type State = S;

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let state = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| (self.0)(&state, &grad));
        }
    }

    match Unary(backward)
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// The gradients of a "same" convolution from its input, weights and output gradient: dx when
/// `want[0]`, dW when `want[1]`.
type SameConvBackward =
    fn(&FlexTensor, &FlexTensor, &FlexTensor, [bool; 2]) -> [Option<FlexTensor>; 2];

/// A "same" convolution on autodiff flex: `forward(x, weight)` now, `backward` when the gradients
/// are computed (both of fovea's convolutions go through here).
fn tracked_same_conv<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
    forward: fn(&FlexTensor, &FlexTensor) -> FlexTensor,
    backward: SameConvBackward,
) -> FloatTensor<Autodiff<Flex, C>> {
    #[derive(Debug)]
    struct SameConv(SameConvBackward);

    impl Backward<Flex, 2> for SameConv {
        /// The input's and the weight's nodes.
        type State = (NodeId, NodeId);

        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            checkpointer: &mut Checkpointer,
        ) {
            let input: FlexTensor = checkpointer.retrieve_node_output(ops.state.0);
            let weight: FlexTensor = checkpointer.retrieve_node_output(ops.state.1);
            let grad = grads.consume::<Flex>(&ops.node);
            let want = ops.parents.each_ref().map(Option::is_some);
            let computed = (self.0)(&input, &weight, &grad, want);
            for (parent, g) in ops.parents.into_iter().zip(computed) {
                if let (Some(node), Some(g)) = (parent, g) {
                    grads.register::<Flex>(node.id, g);
                }
            }
        }
    }

    let out = forward(x.primitive(), weight.primitive());
    match SameConv(backward)
        .prepare::<C>([x.node(), weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&x), prep.checkpoint(&weight));
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// `conv_forward`'s gradients: dx as Burn's (transposed convolution), dW as the unfolded
/// convolution's (per image, the unfolding times the output gradient: one matrix product).
fn conv_same_backward(
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

/// `simd_fn! { fn name(args) -> R { body } }` defines `name` with its body compiled twice: for
/// AVX2 + FMA, run where the CPU has them (detected once, then a cached flag), and as built, for
/// baseline x86-64 (SSE2; a loop of 32-bit multiplications, for one, runs ~12× slower there).
/// The body is an `#[inline(always)]` function inlined into a `#[target_feature]` one, so the
/// features reach all of it (a closure handed to such a function may stay a call of its own and
/// get none). Rust never contracts `a·b + c` into a fused multiply-add: both give the same bits.
macro_rules! simd_fn {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` is compiled for (checked above)
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// The values of a flex f32 tensor in row-major order, and its dims.
fn values(t: &FlexTensor) -> (Vec<usize>, std::borrow::Cow<'_, [f32]>) {
    let dims = t.layout().shape().to_vec();
    // `as_slice` is `None` for a non-contiguous layout
    match t.as_slice::<f32>() {
        Some(s) => (dims, std::borrow::Cow::Borrowed(s)),
        None => {
            let c = t.to_contiguous();
            let v = c
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor")
                .to_vec();
            (dims, std::borrow::Cow::Owned(v))
        }
    }
}

/// Room for a kernel's output of `n` values, handed to `fill` unwritten: `vec![0.0; n]` would
/// first zero it, a pass over megabytes (the first block's tensors are 6.4 MB) as long as many
/// of the kernels' own.
///
/// # Safety
/// `fill` must write every one of the `n` values.
unsafe fn written<T: Copy>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the capacity is at least `n`, and `fill` wrote the first `n` values (the caller's
    // promise)
    unsafe { v.set_len(n) };
    v
}

/// Index (0..4, reading order) of the first maximal value `ys` of a window, that value, and the
/// same index's value of `xs` (the value before a mapping). NaN wins, as in Burn's pooling
/// (`v > max` fails for NaN, so a NaN seen first stays). Selects, no branches: the loop over
/// windows vectorizes.
#[inline(always)]
fn window_max(ys: [f32; 4], xs: [f32; 4]) -> (u8, f32, f32) {
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

/// `x` max-pooled, and for every output which value of its window (0..4, `window_max`) won.
/// With `affine`, the values of plane `i` (image `i / c`, channel `i % c`) are first mapped to
/// a·scale + shift, `(scale, shift) = affine(i)` (batch norm's output, pooled without being
/// kept), and the third result holds each window's winner before the mapping (empty otherwise).
fn pool_forward(
    x: &FlexTensor,
    affine: Option<&(dyn Fn(usize) -> (f32, f32) + Sync)>,
) -> (FlexTensor, Vec<u8>, Vec<f32>) {
    let (dims, src) = values(x);
    let [b, c, h, w] = [dims[0], dims[1], dims[2], dims[3]];
    let (oh, ow) = (h / 2, w / 2);
    let n = b * c * oh * ow;
    let (mut out, mut which, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    if n > 0 {
        // SAFETY: `pool_plane` and `norm_pool_plane` write every value of their plane (and
        // `norm_pool_plane` of its `kept` plane), and the planes cover the `n` values of each
        let kept_len = if affine.is_some() { n } else { 0 };
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
                        match affine {
                            Some(f) => planes.zip(kept.par_chunks_mut(oh * ow)).for_each(
                                |((i, ((o, k), p)), x)| {
                                    let (scale, shift) = f(i);
                                    norm_pool_plane(p, o, k, x, w, scale, shift)
                                },
                            ),
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

/// Windows per step of the fused kernels' inner loops: a row's windows go through in groups of
/// this many, each one vectorized pass (a loop over a short row's windows, 14 or 7 here, would
/// leave most of them to a scalar tail).
const WINDOWS: usize = 8;

/// The first windows of each group covering a row of `ow` windows: groups of `WINDOWS`, the last
/// one moved back to end at the row's end (overlapping the one before it, whose windows it
/// computes again alike); one group from 0 when the row is shorter.
fn window_groups(ow: usize) -> impl Iterator<Item = usize> {
    let last = ow.saturating_sub(WINDOWS);
    (0..ow).step_by(WINDOWS).map(move |first| first.min(last))
}

/// The values of windows `first..first + WINDOWS` of the row pair `top`, `bottom` (two top and
/// two bottom values each): borrowed where the row has them all, copied and zero-padded past
/// the row's end otherwise.
#[inline(always)]
fn window_group<'a>(
    rows: [&'a [f32]; 2],
    first: usize,
    pad: &'a mut [[f32; 2 * WINDOWS]; 2],
) -> [&'a [f32; 2 * WINDOWS]; 2] {
    let span = 2 * first..2 * (first + WINDOWS);
    match (rows[0].get(span.clone()), rows[1].get(span)) {
        (Some(t), Some(b)) => [
            t.try_into().expect("a group's length"),
            b.try_into().expect("a group's length"),
        ],
        _ => {
            for (p, r) in pad.iter_mut().zip(rows) {
                let n = r.len().min(2 * (first + WINDOWS)) - 2 * first;
                p[..n].copy_from_slice(&r[2 * first..2 * first + n]);
            }
            let [t, b] = pad;
            [t, b]
        }
    }
}

/// `src[..n]` written to `dst[..n]`: as one copy of fixed length `N` (moved in registers) when
/// the group is whole, as it is everywhere but at the end of a row shorter than a group; a
/// call to `memcpy` otherwise.
#[inline(always)]
fn put_group<T: Copy, const N: usize>(dst: &mut [MaybeUninit<T>], src: &[T; N], n: usize) {
    if n == N {
        dst[..N].write_copy_of_slice(src);
    } else {
        dst[..n].write_copy_of_slice(&src[..n]);
    }
}

/// `src[..n]` and `N − n` default values after them (`put_group`'s way round).
#[inline(always)]
fn get_group<T: Copy + Default, const N: usize>(src: &[T], n: usize) -> [T; N] {
    match src.get(..N) {
        Some(whole) if n == N => whole.try_into().expect("N values"),
        _ => {
            let mut group = [T::default(); N];
            group[..n].copy_from_slice(&src[..n]);
            group
        }
    }
}

simd_fn! {
    /// `pool_plane` of the plane batch-normalized (`a·scale + shift`, as `affine` computes it),
    /// each winner's value before normalizing into `kept`.
    fn norm_pool_plane(
        p: &[f32],
        o: &mut [MaybeUninit<f32>],
        which: &mut [MaybeUninit<u8>],
        kept: &mut [MaybeUninit<f32>],
        w: usize,
        scale: f32,
        shift: f32,
    ) {
        let ow = w / 2;
        let rows = o.chunks_exact_mut(ow).zip(which.chunks_exact_mut(ow));
        for (((row, which), kept), pair) in rows.zip(kept.chunks_exact_mut(ow)).zip(p.chunks_exact(2 * w)) {
            let (top, bottom) = pair.split_at(w);
            for first in window_groups(ow) {
                let n = WINDOWS.min(ow - first);
                let mut pad = [[0f32; 2 * WINDOWS]; 2];
                let [t, b] = window_group([top, bottom], first, &mut pad);
                let (mut ys, mut ks, mut xs) = ([0f32; WINDOWS], [0u8; WINDOWS], [0f32; WINDOWS]);
                for q in 0..WINDOWS {
                    let x = [t[2 * q], t[2 * q + 1], b[2 * q], b[2 * q + 1]];
                    (ks[q], ys[q], xs[q]) = window_max(x.map(|a| a * scale + shift), x);
                }
                put_group(&mut row[first..], &ys, n);
                put_group(&mut which[first..], &ks, n);
                put_group(&mut kept[first..], &xs, n);
            }
        }
    }
}

/// The pooling's input gradient `[b, c, h, w]` (`dims`) from the output gradient and the
/// forward pass's winners.
fn pool_backward(dims: [usize; 4], which: &[u8], grad: &FlexTensor) -> FlexTensor {
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

/// A "same" convolution of stride 1, directly, image by image: the image is copied once into a
/// zero-bordered scratch (`Padded`), where every kernel tap reads one contiguous run; each output
/// plane is then, tap after tap in weight order, that run times the tap's weight added onto an
/// accumulator (one long vectorized loop per tap). Meant for few input channels, where an
/// unfold + matrix product has too short an inner dimension (9 for one channel) to be efficient.
fn conv_forward(x: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
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

/// The element-wise sum of per-task partial results, in task order.
fn sum_in_order(partials: Vec<Vec<f32>>, n: usize) -> Vec<f32> {
    let mut total = vec![0f32; n];
    for part in &partials {
        for (t, p) in total.iter_mut().zip(part) {
            *t += p;
        }
    }
    total
}

/// For tap column `kx` of a "same" convolution (half-width `pw`, image width `w`): the output
/// columns `x0..x1` whose input column x + kx − pw lies inside the image, or `None`.
fn tap_columns(kx: usize, pw: usize, w: usize) -> Option<(usize, usize)> {
    let x0 = pw.saturating_sub(kx);
    let x1 = (w + pw).saturating_sub(kx).min(w);
    (x0 < x1).then_some((x0, x1))
}

/// For tap row `ky` (half-height `ph`, image height `h`): the input row that output row `y`
/// reads, or `None` outside the image.
fn tap_row(y: usize, ky: usize, ph: usize, h: usize) -> Option<usize> {
    let sy = y + ky;
    (sy >= ph && sy - ph < h).then(|| sy - ph)
}

/// A 32-bit integer hash (the "lowbias32" mixer: xor-shifts and two multiplications, which
/// vectorize).
#[inline(always)]
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// Whether dropout keeps value `i` (probability `threshold`/2³²): the index hashed with the
/// seed's low half, hashed again with its high half, against the threshold (all 32-bit, so the
/// loop vectorizes).
#[inline(always)]
fn kept(seed: u64, i: usize, threshold: u32) -> bool {
    let once = mix32((i as u32) ^ seed as u32);
    mix32(once ^ (seed >> 32) as u32) < threshold
}

/// `x` with dropout's mask (see `kept`) applied: each kept value times 1/`keep`, the others 0.
/// Forward on the input, backward on the gradient.
fn dropout_mask(x: &FlexTensor, keep: f64, seed: u64) -> FlexTensor {
    const CHUNK: usize = 1 << 14;
    let (dims, v) = values(x);
    // `keep` < 1 (dropout's probability is > 0), so the threshold fits 32 bits
    let threshold = (keep * 4294967296.0).round().min(u32::MAX as f64) as u32;
    let scale = (1.0 / keep) as f32;
    let mut out = vec![0f32; v.len()];
    out.par_chunks_mut(CHUNK)
        .zip(v.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(c, (out, v))| dropout_run(v, out, c * CHUNK, seed, threshold, scale));
    FlexTensor::from_data(TensorData::new(out, dims))
}

simd_fn! {
    /// `dropout_mask` of the run `v` that starts at index `first`, into `out`.
    fn dropout_run(v: &[f32], out: &mut [f32], first: usize, seed: u64, threshold: u32, scale: f32) {
        for (j, (o, &a)) in out.iter_mut().zip(v).enumerate() {
            // (a · mask) · scale, as Burn's dropout: a dropped ∞ or NaN gives NaN
            let mask = if kept(seed, first + j, threshold) { 1.0 } else { 0.0 };
            *o = a * mask * scale;
        }
    }
}

/// Images per task of the per-image convolution: fixed, not the thread count, so that the weight
/// gradient's partial sums (one per task, added in task order), and hence the result, are the
/// same on any number of threads.
const IMAGES_PER_TASK: usize = 8;

/// The shapes of a "same" convolution of stride 1: input `[b, c, h, w]`, weights `[o, c, kh, kw]`.
#[derive(Clone, Copy)]
struct Same {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
}

impl Same {
    fn new(x: &[usize], weight: &[usize]) -> Self {
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

    fn plane(&self) -> usize {
        self.h * self.w
    }

    /// A 3 × 3 kernel: the one Winograd's F(2×2, 3×3) computes.
    fn is_3x3(&self) -> bool {
        self.kh == 3 && self.kw == 3
    }

    /// Rows of one image's unfolding, `c·k²`: the weight matrix's inner dimension.
    fn taps(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Row `row` of the unfolding: its (input channel, ky, kx), in the weights' order.
    fn tap(&self, row: usize) -> (usize, usize, usize) {
        let k2 = self.kh * self.kw;
        (row / k2, row / self.kw % self.kh, row % self.kw)
    }

    /// The images of task `t` (see `IMAGES_PER_TASK`).
    fn task_images(&self, t: usize) -> std::ops::Range<usize> {
        t * IMAGES_PER_TASK..self.b.min((t + 1) * IMAGES_PER_TASK)
    }

    fn tasks(&self) -> usize {
        self.b.div_ceil(IMAGES_PER_TASK)
    }
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

/// `dst [m, n] = a · b`, or `dst += a · b` when `accumulate`; all row-major f32. `a` is stored
/// `[m, k]`, or `[k, m]` and used transposed when `a_t`; `b` is `[k, n]`, or `[n, k]` used
/// transposed when `b_t` (strides, no copies). One thread: the callers run images side by side.
#[allow(clippy::too_many_arguments)]
fn product(
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

/// A "same" convolution of stride 1 with many input channels, image by image: each image
/// unfolded into a scratch `[c·k², h·w]` that stays in cache, times the weights `[o, c·k²]`,
/// written straight into the image's output `[o, h·w]`.
fn conv_unfolded_forward(x: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
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
fn conv_unfolded_backward(
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
fn unfolded_backward(
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

// Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2016) for the "same" 3 × 3 convolutions of `conv_unfolded`: each 2 × 2 output
// tile comes from the 4 × 4 input tile around it with 16 multiplications per input channel
// instead of 36. Input tiles (`Bᵀ d B`) and kernels (`G g Gᵀ`) are carried into a 16-point
// transform domain, where the convolution is 16 independent matrix products over channels; the
// products are carried back with `Aᵀ m A`. In one dimension, for inputs d₀..d₃ and taps g₀..g₂:
// m₀ = (d₀ − d₂)g₀, m₁ = (d₁ + d₂)(g₀ + g₁ + g₂)/2, m₂ = (d₂ − d₁)(g₀ − g₁ + g₂)/2,
// m₃ = (d₁ − d₃)g₂; y₀ = m₀ + m₁ + m₂ = d₀g₀ + d₁g₁ + d₂g₂ and y₁ = m₁ − m₂ − m₃ =
// d₁g₀ + d₂g₁ + d₃g₂. Transform point ξ = 4i + j: i the vertical transform index, j the
// horizontal one.

/// Images carried into the transform domain at a time (the products' width: their tiles):
/// fixed, so the products' shapes (and results) do not depend on the thread count. One image of
/// the reference CNN's second convolution takes 16 · (32 + 64) · 56 values there (344 KiB), which
/// stay in a 512 KiB L2 cache between the transforms and the products; two did not, and the
/// transforms waited on memory.
const WINOGRAD_IMAGES: usize = 1;

thread_local! {
    /// A Winograd task's transform-domain values and products and the transforms' scratch, kept
    /// per thread between calls (grown, never zeroed: every value is written before it is read).
    static WINOGRAD_SCRATCH: std::cell::RefCell<Vec<f32>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The per-thread scratch `buf` (grown as needed) cut for `all` tiles of `c` input and `o` output
/// planes: their transform-domain values (`[16, c, all]` and `[16, o, all]`) and the plane
/// transforms' own scratch (12 parity planes).
fn winograd_buffers(
    buf: &mut Vec<f32>,
    tiles: Tiles,
    [c, o]: [usize; 2],
    all: usize,
) -> (&mut [f32], &mut [f32], &mut [f32]) {
    let n = 16 * (c + o) * all + 12 * tiles.parity_len();
    if buf.len() < n {
        buf.resize(n, 0.0);
    }
    let (inputs, rest) = buf.split_at_mut(16 * c * all);
    let (outputs, scratch) = rest.split_at_mut(16 * o * all);
    (inputs, outputs, scratch)
}

/// The 3 × 3 kernels of `weight [o, c, 3, 3]` in the transform domain, `G g Gᵀ`, as `[16, o, c]`;
/// with `transposed`, those of the convolution that gives the input gradient (each kernel turned
/// by 180°, input and output channels swapped) as `[16, c, o]`.
fn winograd_kernels(weight: &[f32], o: usize, c: usize, transposed: bool) -> Vec<f32> {
    // G's rows applied to three values: (1, 0, 0), (½, ½, ½), (½, −½, ½), (0, 0, 1)
    let g = |a: f32, b: f32, d: f32| [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d];
    let (rows, cols) = if transposed { (c, o) } else { (o, c) };
    let mut u = vec![0f32; 16 * o * c];
    for (k, kernel) in weight.chunks_exact(9).enumerate() {
        let (oi, ci) = (k / c, k % c);
        let tap = |y: usize, x: usize| {
            if transposed {
                kernel[(2 - y) * 3 + 2 - x]
            } else {
                kernel[y * 3 + x]
            }
        };
        // vertical first (G g: 4 × 3), then horizontal ((G g) Gᵀ: 4 × 4)
        let columns = [0, 1, 2].map(|x| g(tap(0, x), tap(1, x), tap(2, x)));
        let (row, col) = if transposed { (ci, oi) } else { (oi, ci) };
        for i in 0..4 {
            let t = g(columns[0][i], columns[1][i], columns[2][i]);
            for (j, value) in t.into_iter().enumerate() {
                u[((i * 4 + j) * rows + row) * cols + col] = value;
            }
        }
    }
    u
}

/// The tile grid of an `h × w` plane for F(2×2, 3×3): `th × tw` tiles of 2 × 2 outputs, each
/// reading the 4 × 4 inputs around it (zero outside the plane). The transform domain keeps each
/// tile row with one tile more, `tw + 1` (a spare whose values are never used): then tile `t`'s
/// inputs in the padded plane split by row and column parity sit at `t` + a fixed offset, and
/// every transform runs as one vectorized loop over all tiles.
#[derive(Clone, Copy)]
struct Tiles {
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
}

impl Tiles {
    fn new(h: usize, w: usize) -> Self {
        Tiles {
            h,
            w,
            th: h.div_ceil(2),
            tw: w.div_ceil(2),
        }
    }

    /// Tiles per tile row in the transform domain (the spare included).
    fn row(&self) -> usize {
        self.tw + 1
    }

    /// Tiles per plane in the transform domain (the spares included).
    fn count(&self) -> usize {
        self.th * self.row()
    }

    /// Values of one parity plane (`th + 1` rows of `row()`, and one more that the last spare
    /// tile reads).
    fn parity_len(&self) -> usize {
        (self.th + 1) * self.row() + 1
    }
}

simd_fn! {
    /// One plane `[h, w]` carried into the transform domain: `v[ξ·stride + t]` for each tile `t`
    /// and point ξ. `scratch` holds at least 12 · `parity_len` values (nothing is read from it
    /// before being written).
    fn winograd_input(tiles: Tiles, plane: &[f32], scratch: &mut [f32], v: &mut [f32], stride: usize) {
        let Tiles { h, w, th, .. } = tiles;
        let (row, n, len) = (tiles.row(), tiles.count(), tiles.parity_len());
        let (q, hs) = scratch.split_at_mut(4 * len);
        // the plane padded by one zero, split by parity: q[2a + b][y'·row + x'] is the padded
        // plane's value at row 2y' + a, column 2x' + b, i.e. the plane's at (2y' + a − 1,
        // 2x' + b − 1)
        let (q0, q1) = q.split_at_mut(2 * len);
        for (a, pair) in [q0, q1].into_iter().enumerate() {
            let (even, odd) = pair.split_at_mut(len);
            even.fill(0.0);
            odd.fill(0.0);
            for yp in 0..th + 1 {
                let Some(y) = (2 * yp + a).checked_sub(1).filter(|&y| y < h) else {
                    continue;
                };
                let src = &plane[y * w..(y + 1) * w];
                let (e, o) = (&mut even[yp * row..][..row], &mut odd[yp * row..][..row]);
                // padded column 2x' + 1 is the plane's 2x', padded 2x' the plane's 2x' − 1
                let pairs = src.chunks_exact(2);
                if let [last] = pairs.remainder() {
                    o[w / 2] = *last;
                }
                for ((o, e), two) in o[..w / 2].iter_mut().zip(&mut e[1..=w / 2]).zip(pairs) {
                    *o = two[0];
                    *e = two[1];
                }
            }
        }
        // horizontal, over all positions at once: for padded-row parity a, the four columns
        // 2x', 2x' + 1, 2x' + 2, 2x' + 3 are q[2a][x'], q[2a + 1][x'], q[2a][x' + 1],
        // q[2a + 1][x' + 1]; Bᵀ applied, kept as hs[(a·4 + j)·len + position]
        let m = (th + 1) * row;
        for a in 0..2 {
            let (even, odd) = (&q[2 * a * len..][..m + 1], &q[(2 * a + 1) * len..][..m + 1]);
            let d = [&even[..m], &odd[..m], &even[1..], &odd[1..]];
            apply_bt(d, &mut hs[a * 4 * len..], len);
        }
        // vertical, over all tiles at once: tile t's padded rows 2ty + r are parity r % 2 at
        // position t + (r / 2)·row
        for j in 0..4 {
            let d = std::array::from_fn(|r| &hs[((r % 2) * 4 + j) * len + (r / 2) * row..][..n]);
            apply_bt(d, &mut v[j * stride..], 4 * stride);
        }
    }
}

/// Winograd's Bᵀ (4 × 4, rows (1, 0, −1, 0), (0, 1, 1, 0), (0, −1, 1, 0), (0, 1, 0, −1)) applied
/// to each (d₀[t], d₁[t], d₂[t], d₃[t]): row k's result at `out[k·spacing + t]`.
#[inline(always)]
fn apply_bt(d: [&[f32]; 4], out: &mut [f32], spacing: usize) {
    let n = d[0].len();
    let (o0, rest) = out.split_at_mut(spacing);
    let (o1, rest) = rest.split_at_mut(spacing);
    let (o2, o3) = rest.split_at_mut(spacing);
    lanewise(
        d,
        [&mut o0[..n], &mut o1[..n], &mut o2[..n], &mut o3[..n]],
        |[d0, d1, d2, d3]| [d0 - d2, d1 + d2, d2 - d1, d1 - d3],
    );
}

/// `outs[m][t] = f([ins[0][t], …, ins[K − 1][t]])[m]` for every `t` below the outputs' (equal)
/// length, in runs of `LANES` that the compiler turns into one SIMD operation each, then the
/// rest one by one. (A plain loop is vectorized in unrolled steps of several registers and
/// leaves a scalar tail: 24 of a 56-long transform row.)
#[inline(always)]
fn lanewise<const K: usize, const M: usize>(
    ins: [&[f32]; K],
    outs: [&mut [f32]; M],
    f: impl Fn([f32; K]) -> [f32; M],
) {
    let n = outs[0].len();
    let ins = ins.map(|s| &s[..n]);
    let mut outs = outs.map(|s| &mut s[..n]);
    let full = n - n % LANES;
    for t in (0..full).step_by(LANES) {
        let x: [&[f32; LANES]; K] =
            std::array::from_fn(|k| ins[k][t..t + LANES].try_into().expect("LANES values"));
        let mut y = [[0f32; LANES]; M];
        for l in 0..LANES {
            let r = f(std::array::from_fn(|k| x[k][l]));
            for (ym, rm) in y.iter_mut().zip(r) {
                ym[l] = rm;
            }
        }
        for (out, ym) in outs.iter_mut().zip(&y) {
            out[t..t + LANES].copy_from_slice(ym);
        }
    }
    for t in full..n {
        let r = f(std::array::from_fn(|k| ins[k][t]));
        for (out, rm) in outs.iter_mut().zip(r) {
            out[t] = rm;
        }
    }
}

simd_fn! {
    /// One output plane back from the transform domain: `m[ξ·stride + t]` for each tile `t`,
    /// `Aᵀ m A`, written to `out [h, w]` (the tiles' parts outside the plane, and the spare
    /// tiles, dropped): every value of `out` is written. `ys` is a scratch of 4 · tiles.
    fn winograd_output(
        tiles: Tiles,
        m: &[f32],
        stride: usize,
        ys: &mut [f32],
        out: &mut [MaybeUninit<f32>],
    ) {
        let Tiles { h, w, tw, .. } = tiles;
        let (row, n) = (tiles.row(), tiles.count());
        let p: [&[f32]; 16] = std::array::from_fn(|xi| &m[xi * stride..][..n]);
        let (y00, rest) = ys.split_at_mut(n);
        let (y01, rest) = rest.split_at_mut(n);
        let (y10, y11) = rest.split_at_mut(n);
        let y11 = &mut y11[..n];
        lanewise(p, [&mut *y00, &mut *y01, &mut *y10, &mut *y11], |p| {
            // vertical: s_a[j] = Σᵢ Aᵀ[a][i]·m[4i + j]; then horizontal
            let s0: [f32; 4] = std::array::from_fn(|j| p[j] + p[4 + j] + p[8 + j]);
            let s1: [f32; 4] = std::array::from_fn(|j| p[4 + j] - p[8 + j] - p[12 + j]);
            [
                s0[0] + s0[1] + s0[2],
                s0[1] - s0[2] - s0[3],
                s1[0] + s1[1] + s1[2],
                s1[1] - s1[2] - s1[3],
            ]
        });
        for (a, (left, right)) in [(&*y00, &*y01), (&*y10, &*y11)].into_iter().enumerate() {
            for (ty, (l, r)) in left.chunks_exact(row).zip(right.chunks_exact(row)).enumerate() {
                let y = 2 * ty + a;
                if y >= h {
                    continue;
                }
                let line = &mut out[y * w..(y + 1) * w];
                let mut pairs = line.chunks_exact_mut(2);
                for ((two, &lv), &rv) in (&mut pairs).zip(l).zip(r) {
                    two[0] = MaybeUninit::new(lv);
                    two[1] = MaybeUninit::new(rv);
                }
                if let [last] = pairs.into_remainder() {
                    *last = MaybeUninit::new(l[tw - 1]);
                }
            }
        }
    }
}

simd_fn! {
    /// One output-gradient plane `[h, w]` carried into the transform domain, the gradient of
    /// the forward pass's products: `A dy Aᵀ` for each tile's 2 × 2 values (zero outside the
    /// plane and for the spare tiles) at `d[ξ·stride + t]`; A is 4 × 2, rows (1, 0), (1, 1),
    /// (1, −1), (0, −1). `scratch` holds at least 12 · tiles.
    fn winograd_grad(tiles: Tiles, plane: &[f32], scratch: &mut [f32], d: &mut [f32], stride: usize) {
        let w = tiles.w;
        let (row, n) = (tiles.row(), tiles.count());
        // split by parity: p[2a + b][ty·row + tx] = dy[2ty + a][2tx + b]
        let p = &mut scratch[..4 * n];
        p.fill(0.0);
        for (y, src) in plane.chunks_exact(w).enumerate() {
            let (ty, a) = (y / 2, y % 2);
            let pairs = src.chunks_exact(2);
            if let [last] = pairs.remainder() {
                p[2 * a * n + ty * row + w / 2] = *last;
            }
            let (left, right) = p[2 * a * n..].split_at_mut(n);
            let (left, right) = (&mut left[ty * row..][..w / 2], &mut right[ty * row..][..w / 2]);
            for ((l, r), two) in left.iter_mut().zip(right).zip(pairs) {
                *l = two[0];
                *r = two[1];
            }
        }
        // vertical: e[(b·4 + i)·n + t] = (A (row a = 0, 1))ᵢ for column parity b
        let (p, e) = scratch.split_at_mut(4 * n);
        for b in 0..2 {
            apply_a(&p[b * n..][..n], &p[(2 + b) * n..][..n], &mut e[b * 4 * n..], n);
        }
        // horizontal: d[4i + j] from e[i] of column parities 0 and 1
        for i in 0..4 {
            apply_a(&e[i * n..][..n], &e[(4 + i) * n..][..n], &mut d[4 * i * stride..], stride);
        }
    }
}

/// Winograd's A (4 × 2, rows (1, 0), (1, 1), (1, −1), (0, −1)) applied to each pair
/// (p[t], q[t]): row k's result at `out[k·spacing + t]`.
#[inline(always)]
fn apply_a(p: &[f32], q: &[f32], out: &mut [f32], spacing: usize) {
    let n = p.len();
    let (o0, rest) = out.split_at_mut(spacing);
    let (o1, rest) = rest.split_at_mut(spacing);
    let (o2, o3) = rest.split_at_mut(spacing);
    lanewise(
        [p, q],
        [&mut o0[..n], &mut o1[..n], &mut o2[..n], &mut o3[..n]],
        |[p, q]| [p, p + q, p - q, -q],
    );
}

/// A plane transform into the transform domain: `winograd_input` or `winograd_grad`.
type PlaneTransform = fn(Tiles, &[f32], &mut [f32], &mut [f32], usize);

/// Every plane of consecutive `images` (each `planes` planes of the tiles' plane size) carried
/// into the transform domain by `transform`: point ξ of plane p of image i at
/// `out[ξ·planes·all + p·all + i·n + t]` (n tiles a plane, `all` the images' tiles), so that
/// each point is a `[planes, all]` matrix.
fn planes_into(
    transform: PlaneTransform,
    tiles: Tiles,
    images: &[f32],
    planes: usize,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let (plane, n) = (tiles.h * tiles.w, tiles.count());
    let all = images.len() / (planes * plane) * n;
    for (i, image) in images.chunks_exact(planes * plane).enumerate() {
        for (p, values) in image.chunks_exact(plane).enumerate() {
            transform(
                tiles,
                values,
                scratch,
                &mut out[p * all + i * n..],
                planes * all,
            );
        }
    }
}

/// The weight gradient of a "same" 3 × 3 convolution by F(2×2, 3×3), the forward pass
/// transposed: per tile, the input's transform (as forward) and the output gradient's
/// (`winograd_grad`); their 16 products over tiles, `[o, tiles] · [tiles, c]`, summed into
/// `dU [16, o, c]`; then `dW = Gᵀ dU G` → `[o, c, 3, 3]`. Per task of `IMAGES_PER_TASK` images,
/// `WINOGRAD_IMAGES` at a time, their products added onto the task's sum; the tasks' sums added
/// in order (the same on any thread count).
fn winograd_weight_grad(x: &[f32], g: &[f32], s: &Same) -> Vec<f32> {
    let (c, o, plane) = (s.c, s.o, s.plane());
    let tiles = Tiles::new(s.h, s.w);
    let n = tiles.count();
    let partials: Vec<Vec<f32>> = (0..s.tasks())
        .into_par_iter()
        .map(|task| {
            let mut du = vec![0f32; 16 * o * c];
            WINOGRAD_SCRATCH.with_borrow_mut(|buf| {
                let task = s.task_images(task);
                // `WINOGRAD_IMAGES` at a time, their products added onto the task's
                for first in task.clone().step_by(WINOGRAD_IMAGES) {
                    let images = first..(first + WINOGRAD_IMAGES).min(task.end);
                    let all = images.len() * n; // their tiles
                    let (v, d, scratch) = winograd_buffers(buf, tiles, [c, o], all);
                    let (xs, gs) = (
                        &x[images.start * c * plane..images.end * c * plane],
                        &g[images.start * o * plane..images.end * o * plane],
                    );
                    planes_into(winograd_input, tiles, xs, c, scratch, v);
                    planes_into(winograd_grad, tiles, gs, o, scratch, d);
                    for ((dux, dx), vx) in du
                        .chunks_exact_mut(o * c)
                        .zip(d.chunks_exact(o * all))
                        .zip(v.chunks_exact(c * all))
                    {
                        product(dux, true, dx, false, vx, true, [o, c, all]);
                    }
                }
            });
            du
        })
        .collect();
    let du = sum_in_order(partials, 16 * o * c);
    // Gᵀ's rows applied to four values: (1, ½, ½, 0), (0, ½, −½, 0), (0, ½, ½, 1)
    let gt = |p: [f32; 4]| {
        [
            p[0] + 0.5 * (p[1] + p[2]),
            0.5 * (p[1] - p[2]),
            0.5 * (p[1] + p[2]) + p[3],
        ]
    };
    let mut dw = vec![0f32; o * c * 9];
    for (k, out) in dw.chunks_exact_mut(9).enumerate() {
        let at = |i: usize, j: usize| du[(i * 4 + j) * o * c + k];
        // dU G (4 × 3), then Gᵀ (dU G) (3 × 3)
        let right: [[f32; 3]; 4] = std::array::from_fn(|i| gt([0, 1, 2, 3].map(|j| at(i, j))));
        for col in 0..3 {
            let column = gt([0, 1, 2, 3].map(|i| right[i][col]));
            for (r, value) in column.into_iter().enumerate() {
                out[r * 3 + col] = value;
            }
        }
    }
    dw
}

/// A "same" 3 × 3 convolution of stride 1 by F(2×2, 3×3): `x [b, c, h, w]` and kernels `u`
/// from `winograd_kernels` (`[16, o, c]`) → `[b, o, h, w]`. Per task of `WINOGRAD_IMAGES`
/// images: every plane into the transform domain `[16, c, tiles]`, 16 products `[o, c]` ·
/// `[c, tiles]`, every output plane back.
fn winograd_conv(x: &[f32], [b, c, h, w]: [usize; 4], u: &[f32], o: usize) -> Vec<f32> {
    let tiles = Tiles::new(h, w);
    let (plane, n) = (h * w, tiles.count());
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(WINOGRAD_IMAGES * o * plane)
            .zip(x.par_chunks(WINOGRAD_IMAGES * c * plane))
            .for_each(|(ys, xs)| {
                let images = xs.len() / (c * plane);
                let all = images * n; // the task's tiles
                WINOGRAD_SCRATCH.with_borrow_mut(|buf| {
                    let (v, m, scratch) = winograd_buffers(buf, tiles, [c, o], all);
                    planes_into(winograd_input, tiles, xs, c, scratch, v);
                    for ((mx, ux), vx) in m
                        .chunks_exact_mut(o * all)
                        .zip(u.chunks_exact(o * c))
                        .zip(v.chunks_exact(c * all))
                    {
                        product(mx, false, ux, false, vx, false, [o, all, c]);
                    }
                    for (i, image) in ys.chunks_exact_mut(o * plane).enumerate() {
                        for (oc, p) in image.chunks_exact_mut(plane).enumerate() {
                            let at = oc * all + i * n;
                            winograd_output(tiles, &m[at..], o * all, scratch, p);
                        }
                    }
                });
            });
    };
    // SAFETY: the tiles cover every output value, and `winograd_output` writes each of them
    unsafe { written(b * o * plane, fill) }
}

/// `[b, c, h, w]`: the values of channel `ch` are `b` runs of `h·w`, one per image.
fn channel_runs(x: &[f32], c: usize, plane: usize, ch: usize) -> impl Iterator<Item = &[f32]> {
    x.chunks(c * plane)
        .map(move |image| &image[ch * plane..(ch + 1) * plane])
}

/// Lanes of the partial sums below: independent f32 accumulators the compiler keeps in one
/// SIMD register, so a sum is not one long chain of dependent additions.
const LANES: usize = 8;

/// Σ f(a) over `xs`: `LANES` f32 partial sums (each of at most a run's length / `LANES`
/// terms), added up in f64.
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    let tail: f64 = rest.iter().map(|&v| f(v) as f64).sum();
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail
}

/// (Σ d, Σ d·f(a)) over two equally long runs, as `lane_sum` does.
#[inline(always)]
fn lane_sums2(xs: &[f32], ds: &[f32], f: impl Fn(f32) -> f32) -> (f64, f64) {
    let (mut s1, mut s2) = ([0f32; LANES], [0f32; LANES]);
    let (xc, dc) = (xs.chunks_exact(LANES), ds.chunks_exact(LANES));
    let (xr, dr) = (xc.remainder(), dc.remainder());
    for (x, d) in xc.zip(dc) {
        for k in 0..LANES {
            s1[k] += d[k];
            s2[k] += d[k] * f(x[k]);
        }
    }
    let mut t = (
        s1.iter().map(|&a| a as f64).sum::<f64>(),
        s2.iter().map(|&a| a as f64).sum::<f64>(),
    );
    for (&x, &d) in xr.iter().zip(dr) {
        t.0 += d as f64;
        t.1 += (d * f(x)) as f64;
    }
    t
}

/// Per channel: mean and biased variance, as `[2, c]`.
fn stats(x: &FlexTensor) -> FlexTensor {
    let (dims, v) = values(x);
    let (c, plane) = (dims[1], dims[2..].iter().product::<usize>());
    let per: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| channel_stats(&v, c, plane, ch))
        .collect();
    let mut out: Vec<f32> = per.iter().map(|p| p.0).collect();
    out.extend(per.iter().map(|p| p.1));
    FlexTensor::from_data(TensorData::new(out, [2, c]))
}

simd_fn! {
    /// Channel `ch`'s mean and biased variance over `v` (`[b, c, plane]`).
    fn channel_stats(v: &[f32], c: usize, plane: usize, ch: usize) -> (f32, f32) {
        let n = (v.len() / c) as f64;
        let mut sum = 0f64;
        for run in channel_runs(v, c, plane, ch) {
            sum += lane_sum(run, |a| a);
        }
        let mean = sum / n;
        let m = mean as f32;
        let mut sq = 0f64;
        for run in channel_runs(v, c, plane, ch) {
            sq += lane_sum(run, |a| (a - m) * (a - m));
        }
        (m, (sq / n) as f32)
    }
}

/// Per channel: the mean, 1/√(var + ε), and γ.
fn channel_terms(
    gamma: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (_, s) = values(stats);
    let (_, g) = values(gamma);
    let c = g.len();
    let inv_std = s[c..]
        .iter()
        .map(|&var| (1.0 / (var as f64 + epsilon).sqrt()) as f32)
        .collect();
    (s[..c].to_vec(), inv_std, g.to_vec())
}

fn norm_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    let (dims, v) = values(x);
    let (_, b) = values(beta);
    let (mean, inv_std, g) = channel_terms(gamma, stats, epsilon);
    let (c, plane) = (dims[1], dims[2..].iter().product::<usize>());
    // SAFETY: `affine` writes all of each plane, and the planes cover `v.len()`
    let out = unsafe {
        written(v.len(), |out| {
            out.par_chunks_mut(plane)
                .zip(v.par_chunks(plane))
                .enumerate()
                .for_each(|(i, (o, xs))| {
                    let ch = i % c;
                    let scale = inv_std[ch] * g[ch];
                    affine(xs, o, scale, b[ch] - mean[ch] * scale);
                });
        })
    };
    FlexTensor::from_data(TensorData::new(out, dims))
}

simd_fn! {
    /// `o = a·scale + shift` for each `a` of `xs` (as long as `o`).
    fn affine(xs: &[f32], o: &mut [MaybeUninit<f32>], scale: f32, shift: f32) {
        for (o, &a) in o.iter_mut().zip(xs) {
            o.write(a * scale + shift);
        }
    }
}

/// Gradients of batch norm with respect to x, γ and β:
/// dβ = Σ dy, dγ = Σ dy·x̂, dx = γ/σ · (dy − dβ/n − x̂·dγ/n) with x̂ = (x − mean)/σ.
fn norm_backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
    grad: &FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (dims, v) = values(x);
    let (_, dy) = values(grad);
    let (mean, inv_std, g) = channel_terms(gamma, stats, epsilon);
    let (c, plane) = (dims[1], dims[2..].iter().product::<usize>());
    let n = (v.len() / c.max(1)) as f64;
    let sums = grad_sums(&v, &dy, c, plane, &mean, &inv_std);
    // SAFETY: `norm_dx` writes all of each plane, and the planes cover `v.len()`
    let dx = unsafe {
        written(v.len(), |dx| {
            dx.par_chunks_mut(plane)
                .zip(v.par_chunks(plane).zip(dy.par_chunks(plane)))
                .enumerate()
                .for_each(|(i, (o, (xs, ds)))| {
                    let ch = i % c;
                    let (dg, db) = sums[ch];
                    let means = [mean[ch], (db / n) as f32, (dg / n) as f32];
                    norm_dx(xs, ds, o, means, inv_std[ch], g[ch] * inv_std[ch]);
                });
        })
    };
    let dgamma = sums.iter().map(|s| s.0 as f32).collect::<Vec<_>>();
    let dbeta = sums.iter().map(|s| s.1 as f32).collect::<Vec<_>>();
    (
        FlexTensor::from_data(TensorData::new(dx, dims)),
        FlexTensor::from_data(TensorData::new(dgamma, [c])),
        FlexTensor::from_data(TensorData::new(dbeta, [c])),
    )
}

/// Per channel of `v` and `dy` (`[b, c, plane]`): (Σ dy·x̂, Σ dy), x̂ = (x − mean)·inv_std.
fn grad_sums(
    v: &[f32],
    dy: &[f32],
    c: usize,
    plane: usize,
    mean: &[f32],
    inv_std: &[f32],
) -> Vec<(f64, f64)> {
    (0..c)
        .into_par_iter()
        .map(|ch| channel_grad_sums(v, dy, c, plane, ch, mean[ch], inv_std[ch]))
        .collect()
}

simd_fn! {
    /// Channel `ch`'s (Σ dy·x̂, Σ dy) over `v` and `dy` (`[b, c, plane]`), x̂ = (x − mean)·`inv_std`.
    fn channel_grad_sums(
        v: &[f32],
        dy: &[f32],
        c: usize,
        plane: usize,
        ch: usize,
        mean: f32,
        inv_std: f32,
    ) -> (f64, f64) {
        let (mut db, mut dg) = (0f64, 0f64);
        for (xr, gr) in channel_runs(v, c, plane, ch).zip(channel_runs(dy, c, plane, ch)) {
            let (b, g) = lane_sums2(xr, gr, |a| (a - mean) * inv_std);
            db += b;
            dg += g;
        }
        (dg, db)
    }
}

simd_fn! {
    /// One plane of batch norm's dx: `scale · (dy − mean(dy) − x̂·mean(dy·x̂))`, with `means` the
    /// channel's (mean of x, mean of dy, mean of dy·x̂) and x̂ = (x − mean)·`inv_std`.
    fn norm_dx(
        xs: &[f32],
        ds: &[f32],
        o: &mut [MaybeUninit<f32>],
        means: [f32; 3],
        inv_std: f32,
        scale: f32,
    ) {
        let [mean, mean_db, mean_dg] = means;
        for ((o, &a), &d) in o.iter_mut().zip(xs).zip(ds) {
            let xhat = (a - mean) * inv_std;
            o.write(scale * (d - mean_db - xhat * mean_dg));
        }
    }
}

/// Rows of `x` per task of `dense_forward`: fixed, not the thread count, so that every row goes
/// through a product of the same shape (and sums in the same order) on any number of threads.
const DENSE_ROWS: usize = 32;

/// `x [b, i] · weight [i, o] + bias`: the product per group of `DENSE_ROWS` rows, side by side,
/// then the bias added (in Burn's order: the product first).
fn dense_forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
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
fn dense_backward(
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
            let mut db = vec![0f32; o];
            for row in g.chunks_exact(o.max(1)) {
                for (s, &v) in db.iter_mut().zip(row) {
                    *s += v;
                }
            }
            (dw, FlexTensor::from_data(TensorData::new(db, [o])))
        },
    );
    [dx, dw, Some(db)]
}

/// Values per task of `adam_forward`.
const ADAM_RUN: usize = 1 << 14;

/// `adam_step`'s pass over `[param, grad, moment_1, moment_2]` (the moments not read on the
/// first step): the new parameter, first and second moments, in runs of `ADAM_RUN` side by side.
fn adam_forward(
    [param, grad, m, v]: [&FlexTensor; 4],
    t: AdamTerms,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (dims, p) = values(param);
    let (_, g) = values(grad);
    let (m, v) = (values(m).1, values(v).1);
    let n = p.len();
    let run = |k: usize, outs: [&mut [MaybeUninit<f32>]; 3]| {
        let r = k * ADAM_RUN..k * ADAM_RUN + outs[0].len();
        adam_run(
            [&p[r.clone()], &g[r.clone()], &m[r.clone()], &v[r]],
            outs,
            t,
        );
    };
    // SAFETY: `adam_run` writes every value of its three runs, and the runs cover the `n` values
    // of each output
    let (np, nm, nv) = unsafe {
        let (mut nm, mut nv) = (None, None);
        let np = written(n, |np| {
            nm = Some(written(n, |nm| {
                nv = Some(written(n, |nv| {
                    np.par_chunks_mut(ADAM_RUN)
                        .zip(nm.par_chunks_mut(ADAM_RUN))
                        .zip(nv.par_chunks_mut(ADAM_RUN))
                        .enumerate()
                        .for_each(|(k, ((np, nm), nv))| run(k, [np, nm, nv]));
                }));
            }));
        });
        (np, nm.expect("filled with np"), nv.expect("filled with np"))
    };
    let out = |values: Vec<f32>| FlexTensor::from_data(TensorData::new(values, dims.clone()));
    (out(np), out(nm), out(nv))
}

simd_fn! {
    /// Adam's step on one run, element by element in Burn's order of operations: g ← p·λ + g
    /// with weight decay; m ← m·β₁ + g·(1 − β₁), v ← v·β₂ + g²·(1 − β₂) (m ← g·(1 − β₁),
    /// v ← g²·(1 − β₂) on the first step); p ← p − (m·factor)/(√v + ε′)·lr.
    fn adam_run(ins: [&[f32]; 4], outs: [&mut [MaybeUninit<f32>]; 3], t: AdamTerms) {
        let [p, g, m, v] = ins;
        let [np, nm, nv] = outs;
        let n = np.len();
        let (p, g, m, v, nm, nv) = (&p[..n], &g[..n], &m[..n], &v[..n], &mut nm[..n], &mut nv[..n]);
        for i in 0..n {
            let grad = match t.decay {
                Some(penalty) => p[i] * penalty + g[i],
                None => g[i],
            };
            let (m1, m2) = if t.first {
                (grad * t.one_minus_beta_1, grad * grad * t.one_minus_beta_2)
            } else {
                (
                    m[i] * t.beta_1 + grad * t.one_minus_beta_1,
                    v[i] * t.beta_2 + grad * grad * t.one_minus_beta_2,
                )
            };
            nm[i].write(m1);
            nv[i].write(m2);
            np[i].write(p[i] - m1 * t.factor / (m2.sqrt() + t.epsilon) * t.lr);
        }
    }
}

/// Batch norm of `x` (`norm_forward`'s values) max-pooled 2 × 2 in the same pass
/// (`pool_forward`): the pooled output, each window's winner and the winner's x.
fn norm_pool_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, Vec<u8>, Vec<f32>) {
    let (_, b) = values(beta);
    let (mean, inv_std, g) = channel_terms(gamma, stats, epsilon);
    let c = g.len();
    let affine = |i: usize| {
        let ch = i % c;
        let scale = inv_std[ch] * g[ch];
        (scale, b[ch] - mean[ch] * scale)
    };
    pool_forward(x, Some(&affine))
}

/// Gradients of `norm_pool_forward` with respect to x, γ and β from the pooled output's
/// gradient. The normalized value's gradient dy is the pooled gradient at each window's winner
/// and zero elsewhere, so Σ dy and Σ dy·x̂ run over the winners alone, and dx (`norm_backward`'s
/// formula) is written in one pass over x.
fn norm_pool_backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
    (which, kept): (&[u8], &[f32]),
    grad: &FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (dims, v) = values(x);
    let (_, gp) = values(grad);
    let (mean, inv_std, g) = channel_terms(gamma, stats, epsilon);
    let [b, c, h, w] = [dims[0], dims[1], dims[2], dims[3]];
    let (plane, pooled) = (h * w, (h / 2) * (w / 2));
    let n = (b * plane) as f64;
    let (sums, dx) = if pooled == 0 || v.is_empty() {
        // no window: no gradient reaches x (dy is zero everywhere)
        (vec![(0.0, 0.0); c], vec![0f32; v.len()])
    } else {
        // the winners' x (`kept`, `[b, c, pooled]`) and their gradients
        let sums = grad_sums(kept, &gp, c, pooled, &mean, &inv_std);
        // SAFETY: `norm_pool_dx` writes all of each plane, and the planes cover `v.len()`
        let dx = unsafe {
            written(v.len(), |dx| {
                dx.par_chunks_mut(plane)
                    .zip(v.par_chunks(plane))
                    .zip(gp.par_chunks(pooled).zip(which.par_chunks(pooled)))
                    .enumerate()
                    .for_each(|(i, ((o, xs), (gs, ks)))| {
                        let ch = i % c;
                        let (dg, db) = sums[ch];
                        let means = [mean[ch], (db / n) as f32, (dg / n) as f32];
                        norm_pool_dx(xs, gs, ks, o, w, means, inv_std[ch], g[ch] * inv_std[ch]);
                    });
            })
        };
        (sums, dx)
    };
    let dgamma = sums.iter().map(|s| s.0 as f32).collect::<Vec<_>>();
    let dbeta = sums.iter().map(|s| s.1 as f32).collect::<Vec<_>>();
    (
        FlexTensor::from_data(TensorData::new(dx, dims)),
        FlexTensor::from_data(TensorData::new(dgamma, [c])),
        FlexTensor::from_data(TensorData::new(dbeta, [c])),
    )
}

simd_fn! {
    /// One plane of `norm_pool_backward`'s dx: `norm_dx`'s `scale · (dy − mean(dy) − x̂·mean(dy·x̂))`
    /// with dy the pooled gradient `gs` at each window's winner (`which`) and zero elsewhere
    /// (including an odd size's last row and column, which no window covers).
    fn norm_pool_dx(
        xs: &[f32],
        gs: &[f32],
        which: &[u8],
        o: &mut [MaybeUninit<f32>],
        w: usize,
        means: [f32; 3],
        inv_std: f32,
        scale: f32,
    ) {
        let [mean, mean_db, mean_dg] = means;
        let f = |a: f32, d: f32| {
            let xhat = (a - mean) * inv_std;
            scale * (d - mean_db - xhat * mean_dg)
        };
        let ow = w / 2;
        let rows = o.chunks_exact_mut(2 * w).zip(xs.chunks_exact(2 * w));
        for ((pair, xpair), (gr, kr)) in rows.zip(gs.chunks_exact(ow).zip(which.chunks_exact(ow))) {
            let (top, bottom) = pair.split_at_mut(w);
            let (xt, xb) = xpair.split_at(w);
            for first in window_groups(ow) {
                let n = WINDOWS.min(ow - first);
                let mut pad = [[0f32; 2 * WINDOWS]; 2];
                let [t, b] = window_group([xt, xb], first, &mut pad);
                let (g, k): ([f32; WINDOWS], [u8; WINDOWS]) =
                    (get_group(&gr[first..], n), get_group(&kr[first..], n));
                let (mut dt, mut db) = ([0f32; 2 * WINDOWS], [0f32; 2 * WINDOWS]);
                for q in 0..WINDOWS {
                    let d = |i: u8| if k[q] == i { g[q] } else { 0.0 };
                    (dt[2 * q], dt[2 * q + 1]) = (f(t[2 * q], d(0)), f(t[2 * q + 1], d(1)));
                    (db[2 * q], db[2 * q + 1]) = (f(b[2 * q], d(2)), f(b[2 * q + 1], d(3)));
                }
                put_group(&mut top[2 * first..], &dt, 2 * n);
                put_group(&mut bottom[2 * first..], &db, 2 * n);
            }
            let odd = top[2 * ow..].iter_mut().zip(&xt[2 * ow..]);
            for (o, &a) in odd.chain(bottom[2 * ow..].iter_mut().zip(&xb[2 * ow..])) {
                o.write(f(a, 0.0));
            }
        }
        let done = o.len() / (2 * w) * 2 * w;
        for (o, &a) in o[done..].iter_mut().zip(&xs[done..]) {
            o.write(f(a, 0.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use rand::{Rng, SeedableRng};

    /// Values drawn uniformly from [lo, hi) by a seeded host generator: the tests leave the
    /// device's random generator, which tests running in parallel share, alone.
    fn noise<const D: usize>(
        shape: [usize; D],
        seed: u64,
        lo: f32,
        hi: f32,
        d: &Device,
    ) -> Tensor<D> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
        Tensor::from_data(TensorData::new(v, shape), d)
    }

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    /// The largest absolute difference between two equally long vectors.
    fn worst(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max)
    }

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
    fn batch_norm_and_its_gradients_equal_burns() {
        let device = Device::flex().autodiff();
        let [b, c, h, w] = [4, 3, 5, 6];
        let x = noise([b, c, h, w], 3, -3.0, 4.0, &device);
        let gamma = noise([c], 4, 0.5, 1.5, &device);
        let beta = noise([c], 5, -0.5, 0.5, &device);
        let weights = noise([b, c, h, w], 6, -1.0, 1.0, &device);
        let run = |ours: bool| {
            let (x, g, bt) = (
                x.clone().detach().require_grad(),
                gamma.clone().detach().require_grad(),
                beta.clone().detach().require_grad(),
            );
            let (y, mean, var) = if ours {
                batch_norm_train(x.clone(), g.clone(), bt.clone(), 1e-5, false).unwrap()
            } else {
                let r =
                    burn::tensor::module::batch_norm_train(x.clone(), g.clone(), bt.clone(), 1e-5);
                (r.output, r.mean, r.variance)
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            [
                host(y),
                host(mean),
                host(var),
                host(x.grad(&grads).unwrap()),
                host(g.grad(&grads).unwrap()),
                host(bt.grad(&grads).unwrap()),
            ]
        };
        let (ours, theirs) = (run(true), run(false));
        for (what, (a, b)) in ["output", "mean", "variance", "dx", "dgamma", "dbeta"]
            .iter()
            .zip(ours.iter().zip(&theirs))
        {
            let d = worst(a, b);
            assert!(d < 1e-4, "{what} differs by {d}");
        }
    }

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
            for (what, (a, b)) in ["output", "dx", "dw"].iter().zip(ours.iter().zip(&theirs)) {
                let d = worst(a, b);
                assert!(
                    d < 1e-4,
                    "{what} ({c}→{o}, k {k}, unfolded {unfolded}) differs by {d}"
                );
            }
        }
    }

    #[test]
    fn dropout_keeps_its_share_and_the_gradient_takes_the_same_mask() {
        let device = Device::flex().autodiff();
        let (keep, n) = (0.7, 64 * 3136);
        let x = noise([n], 15, 0.5, 1.5, &device).require_grad(); // no zeros: kept ≠ dropped
        let mix = noise([n], 16, 0.5, 1.5, &device);
        let run = |seed: u64| {
            let x = x.clone().detach().require_grad();
            let y = <Dispatch as FlexKernels>::dropout(x.clone().into_dispatch(), keep, seed);
            let y = Tensor::<1>::from_dispatch(y);
            let grads = (y.clone() * mix.clone()).sum().backward();
            (host(y), host(x.grad(&grads).unwrap()))
        };
        let (xs, ms) = (host(x.clone()), host(mix.clone()));
        let scale = (1.0 / keep) as f32;
        let (y, dx) = run(5);
        let mut kept = 0;
        for i in 0..n {
            if y[i] == 0.0 {
                assert_eq!(dx[i], 0.0, "value {i} dropped, its gradient not");
            } else {
                kept += 1;
                assert_eq!(
                    y[i],
                    xs[i] * scale,
                    "value {i} kept, but not scaled by 1/keep"
                );
                assert_eq!(dx[i], ms[i] * scale, "value {i} kept, its gradient not");
            }
        }
        // 200,704 draws: the kept share's standard deviation is ~0.001
        let share = kept as f64 / n as f64;
        assert!(
            (share - keep).abs() < 0.005,
            "kept {share}, expected {keep}"
        );
        assert_eq!(run(5).0, y, "one seed, one mask");
        let other = run(6).0;
        let differ = (0..n)
            .filter(|&i| (y[i] == 0.0) != (other[i] == 0.0))
            .count();
        assert!(
            differ > n / 4,
            "seeds 5 and 6 drop alike ({differ} of {n} differ)"
        );
        // the layer: fovea's kernel in training on flex, the identity in inference
        let layer = burn::nn::DropoutConfig::new(1.0 - keep).init();
        let y = host(dropout(&layer, x.clone()));
        let share = y.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        assert!((share - keep).abs() < 0.005, "the layer kept {share}");
        assert_eq!(host(dropout(&layer, x.clone().inner())), xs);
    }

    #[test]
    fn inference_batch_norm_equals_burns() {
        let device = Device::flex();
        let x = noise([3, 4, 5, 5], 10, -2.0, 4.0, &device);
        let p = |seed: u64, m: f32| noise([4], seed, m, m + 1.0, &device);
        // γ of both signs: a negative one turns each window's maximum into its minimum
        let (g, b, mean, var) = (p(11, -0.5), p(12, -0.5), p(13, 0.0), p(14, 0.5));
        let theirs = burn::tensor::module::batch_norm(
            x.clone(),
            g.clone(),
            b.clone(),
            mean.clone(),
            var.clone(),
            1e-5,
        );
        let theirs_pooled = MaxPool2dConfig::new([2, 2]).init().forward(theirs.clone());
        for (pool, theirs) in [(false, theirs), (true, theirs_pooled)] {
            let args = [g.clone(), b.clone(), mean.clone(), var.clone()];
            let ours = batch_norm_eval(x.clone(), args, 1e-5, pool).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let d = worst(&host(ours), &host(theirs));
            assert!(d < 1e-5, "pooled {pool}: differs by {d}");
        }
    }

    #[test]
    fn batch_norm_pooled_in_one_pass_equals_the_two_apart() {
        let device = Device::flex().autodiff();
        // odd sizes (a last row and column no window covers), rows of fewer and of more windows
        // than a group (`WINDOWS`), and γ of both signs
        for [b, c, h, w] in [[4, 3, 6, 8], [3, 2, 7, 5], [2, 3, 5, 23], [2, 2, 4, 32]] {
            let x = noise([b, c, h, w], 15, -3.0, 4.0, &device);
            let gamma = noise([c], 16, -1.5, 1.5, &device);
            let beta = noise([c], 17, -0.5, 0.5, &device);
            let weights = noise([b, c, h / 2, w / 2], 18, -1.0, 1.0, &device);
            let run = |fused: bool| {
                let (x, g, bt) = (
                    x.clone().detach().require_grad(),
                    gamma.clone().detach().require_grad(),
                    beta.clone().detach().require_grad(),
                );
                let (y, mean, var) =
                    batch_norm_train(x.clone(), g.clone(), bt.clone(), 1e-5, fused).unwrap();
                let y = if fused { y } else { max_pool_2x2(y).unwrap() };
                let grads = (y.clone() * weights.clone()).sum().backward();
                [
                    host(y),
                    host(mean),
                    host(var),
                    host(x.grad(&grads).unwrap()),
                    host(g.grad(&grads).unwrap()),
                    host(bt.grad(&grads).unwrap()),
                ]
            };
            let (fused, apart) = (run(true), run(false));
            assert_eq!(fused[0], apart[0], "the pooled output");
            for (what, (a, b)) in ["mean", "variance", "dx", "dgamma", "dbeta"]
                .iter()
                .zip(fused[1..].iter().zip(&apart[1..]))
            {
                let d = worst(a, b);
                assert!(d < 1e-5, "{what} differs by {d}");
            }
        }
    }

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
        for (what, (a, b)) in ["output", "dx", "dweight", "dbias"]
            .iter()
            .zip(ours.iter().zip(&theirs))
        {
            let d = worst(a, b);
            assert!(d < 1e-5, "{what} differs by {d}");
        }
        // inference, without autodiff
        let plain = layer.valid();
        let x = x.inner();
        let d = worst(&host(linear(&plain, x.clone())), &host(plain.forward(x)));
        assert!(d < 1e-5, "inference differs by {d}");
    }

    #[test]
    fn other_backends_keep_burns_pooling() {
        #[allow(deprecated)]
        let x = Tensor::<4>::zeros([1, 1, 2, 2], &Device::ndarray());
        assert!(max_pool_2x2(x).is_err());
    }
}
