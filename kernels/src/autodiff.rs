//! The extension's ops on autodiff flex: each forward kernel, recorded with a backward node
//! that computes its gradients from what the forward pass kept (a window's winner, a dropout
//! seed, the input's checkpointed node).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};

use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Flex};

use crate::activation::{activation_backward, activation_forward, tanh_backward, tanh_forward};
use crate::adam::adam_forward;
use crate::batch_norm::{norm_backward, norm_forward, stats};
use crate::dense::{dense_backward, dense_forward};
use crate::direct::{conv_forward, conv_same_backward};
use crate::dropout::dropout_mask;
use crate::extension::{AdamTerms, Cell, FlexKernels, FlexTensor};
use crate::norm_pool::{norm_pool_backward, norm_pool_forward};
use crate::pool::{pool_backward, pool_forward};
use crate::recurrent::{Kept, recurrent_backward, recurrent_forward};
use crate::strided::{strided_backward, strided_forward, transposed_backward, transposed_forward};
use crate::unfolded::{conv_unfolded_backward, conv_unfolded_forward};

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
        let forward = |x: &FlexTensor, w: &FlexTensor, _: [usize; 2]| conv_forward(x, w);
        let backward = |x: &_, w: &_, g: &_, want, _: [usize; 2]| conv_same_backward(x, w, g, want);
        tracked_conv::<C>(x, weight, [1, 0], forward, backward)
    }

    fn conv_unfolded(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let forward = |x: &FlexTensor, w: &FlexTensor, _: [usize; 2]| conv_unfolded_forward(x, w);
        let backward =
            |x: &_, w: &_, g: &_, want, _: [usize; 2]| conv_unfolded_backward(x, w, g, want);
        tracked_conv::<C>(x, weight, [1, 0], forward, backward)
    }

    fn conv_strided(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        let at = [stride, padding];
        tracked_conv::<C>(x, weight, at, strided_forward, strided_backward)
    }

    fn conv_transpose_strided(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        let at = [stride, padding];
        tracked_conv::<C>(x, weight, at, transposed_forward, transposed_backward)
    }

    fn dropout(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self> {
        let out = dropout_mask(x.primitive(), keep, seed);
        // kept: `keep` and the seed, so the backward pass draws the same mask again
        tracked_unary::<C, _>(&x, out, (keep, seed), |&(keep, seed), grad| {
            dropout_mask(grad, keep, seed)
        })
    }

    fn leaky_relu(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        let out = activation_forward(x.primitive(), slope);
        // kept: the output (shared, not copied), whose sign is the input's
        tracked_unary::<C, _>(&x, out.clone(), (out, slope), |(out, slope), grad| {
            activation_backward(out, *slope, grad)
        })
    }

    fn tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let out = tanh_forward(x.primitive());
        // kept: the output (shared, not copied)
        tracked_unary::<C, _>(&x, out.clone(), out, tanh_backward)
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

    fn recurrent(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        cell: Cell,
        reverse: bool,
    ) -> FloatTensor<Self> {
        tracked_recurrent::<C>([x, w_ih, b_ih, w_hh, b_hh], cell, reverse)
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

/// A convolution's gradients from its input, weights, output gradient, which gradients are
/// wanted (dx, dW) and its stride and padding.
type ConvBackward =
    fn(&FlexTensor, &FlexTensor, &FlexTensor, [bool; 2], [usize; 2]) -> [Option<FlexTensor>; 2];

/// A convolution (or transposed convolution) of stride and padding `at` on autodiff flex:
/// `forward(x, weight, at)` now, `backward` when the gradients are computed (all of fovea's
/// convolutions go through here).
fn tracked_conv<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
    at: [usize; 2],
    forward: fn(&FlexTensor, &FlexTensor, [usize; 2]) -> FlexTensor,
    backward: ConvBackward,
) -> FloatTensor<Autodiff<Flex, C>> {
    #[derive(Debug)]
    struct Conv(ConvBackward);

    impl Backward<Flex, 2> for Conv {
        /// The input's and the weight's nodes, the stride and the padding.
        type State = (NodeId, NodeId, [usize; 2]);

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
            let computed = (self.0)(&input, &weight, &grad, want, ops.state.2);
            for (parent, g) in ops.parents.into_iter().zip(computed) {
                if let (Some(node), Some(g)) = (parent, g) {
                    grads.register::<Flex>(node.id, g);
                }
            }
        }
    }

    let out = forward(x.primitive(), weight.primitive(), at);
    match Conv(backward)
        .prepare::<C>([x.node(), weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&x), prep.checkpoint(&weight), at);
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// A recurrent layer's direction on autodiff flex (`[x, w_ih, b_ih, w_hh, b_hh]`): the forward
/// kernel keeping what the backward pass needs.
fn tracked_recurrent<C: CheckpointStrategy>(
    [x, w_ih, b_ih, w_hh, b_hh]: [FloatTensor<Autodiff<Flex, C>>; 5],
    cell: Cell,
    reverse: bool,
) -> FloatTensor<Autodiff<Flex, C>> {
    #[derive(Debug)]
    struct Recurrent;

    impl Backward<Flex, 5> for Recurrent {
        /// The input, both weight matrices, what the forward pass kept, the cell, the direction.
        type State = (FlexTensor, FlexTensor, FlexTensor, Kept, Cell, bool);

        fn backward(
            self,
            ops: Ops<Self::State, 5>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let (x, w_ih, w_hh, kept, cell, reverse) = ops.state;
            let grad = grads.consume::<Flex>(&ops.node);
            let want_dx = ops.parents[0].is_some();
            let computed =
                recurrent_backward(&x, [&w_ih, &w_hh], &kept, &grad, cell, reverse, want_dx);
            for (parent, g) in ops.parents.into_iter().zip(computed) {
                if let (Some(node), Some(g)) = (parent, g) {
                    grads.register::<Flex>(node.id, g);
                }
            }
        }
    }

    let weights = [&w_ih, &b_ih, &w_hh, &b_hh].map(|w| w.primitive());
    let tracked = [&x, &w_ih, &b_ih, &w_hh, &b_hh].map(|t| t.node());
    match Recurrent.prepare::<C>(tracked).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (out, kept) = recurrent_forward(x.primitive(), weights, cell, reverse, true);
            let kept = kept.expect("kept for the backward pass");
            let state = (
                x.primitive().clone(),
                w_ih.primitive().clone(),
                w_hh.primitive().clone(),
                kept,
                cell,
                reverse,
            );
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(recurrent_forward(x.primitive(), weights, cell, reverse, false).0)
        }
    }
}
