//! The extension's ops on plain flex (inference, and the forward passes the autodiff ops
//! wrap): each op's forward kernel.

use burn::backend::Flex;
use burn::backend::tensor::FloatTensor;

use crate::activation::{activation_forward, tanh_forward};
use crate::adam::adam_forward;
use crate::batch_norm::{norm_forward, stats};
use crate::dense::dense_forward;
use crate::direct::conv_forward;
use crate::dropout::dropout_mask;
use crate::extension::{AdamTerms, Cell, FlexKernels};
use crate::norm_pool::norm_pool_forward;
use crate::pool::pool_forward;
use crate::recurrent::recurrent_forward;
use crate::strided::{strided_forward, transposed_forward};
use crate::unfolded::conv_unfolded_forward;

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

    fn conv_strided(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        strided_forward(&x, &weight, [stride, padding])
    }

    fn conv_transpose_strided(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        transposed_forward(&x, &weight, [stride, padding])
    }

    fn dropout(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self> {
        dropout_mask(&x, keep, seed)
    }

    fn leaky_relu(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        activation_forward(&x, slope)
    }

    fn tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tanh_forward(&x)
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

    fn recurrent(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        cell: Cell,
        reverse: bool,
    ) -> FloatTensor<Self> {
        recurrent_forward(&x, [&w_ih, &b_ih, &w_hh, &b_hh], cell, reverse, false).0
    }
}
