//! The layers the models share, each computed by one of fovea's own kernels on flex (see
//! `fovea_kernels`) where the kernel covers the layer's settings, and by Burn's layer otherwise:
//! the same function either way, so a model's weights and results do not depend on the route.

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;

/// Input channels up to which a "same" convolution uses fovea's direct flex kernel (see
/// `convolve`): the first layer of a grayscale or colour image. Wider layers are unfolded image by
/// image into matrix products.
const OWN_CONV_MAX_CHANNELS: usize = 4;

/// A convolution. On flex: a "same" convolution of stride 1 is computed directly for few input
/// channels and unfolded image by image into matrix products for more; a plain strided one
/// (square kernel, equal strides, the same padding on every side) is unfolded likewise. Burn's
/// layer otherwise. Training and inference alike.
pub(crate) fn convolve(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [kh, kw] = conv.kernel_size;
    let [sh, sw] = conv.stride;
    let plain = conv.dilation == [1, 1] && conv.groups == 1;
    let same = plain && sh == 1 && sw == 1 && kh % 2 == 1 && kw % 2 == 1;
    let y = match conv.padding {
        PaddingConfig2d::Same if same => {
            if x.dims()[1] > OWN_CONV_MAX_CHANNELS {
                fovea_kernels::conv_unfolded(x, conv.weight.val())
            } else {
                fovea_kernels::conv_same(x, conv.weight.val())
            }
        }
        PaddingConfig2d::Valid if plain && kh == kw && sh == sw => {
            fovea_kernels::conv_strided(x, conv.weight.val(), sh, 0)
        }
        PaddingConfig2d::Explicit(t, l, b, r)
            if plain && kh == kw && sh == sw && t == l && t == b && t == r =>
        {
            fovea_kernels::conv_strided(x, conv.weight.val(), sh, t)
        }
        _ => Err(x),
    };
    match y {
        Ok(y) => add_bias(y, conv.bias.as_ref().map(|b| b.val())),
        Err(x) => conv.forward(x),
    }
}

/// A transposed convolution: on flex, with a square kernel, equal strides and paddings, and no
/// extra output padding, fovea's kernel (the gradient of a strided convolution with respect to
/// its input); Burn's layer otherwise.
pub(crate) fn convolve_transpose(conv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let [kh, kw] = conv.kernel_size;
    let [sh, sw] = conv.stride;
    let [ph, pw] = conv.padding;
    let covered = conv.dilation == [1, 1]
        && conv.groups == 1
        && conv.padding_out == [0, 0]
        && kh == kw
        && sh == sw
        && ph == pw;
    if !covered {
        return conv.forward(x);
    }
    match fovea_kernels::conv_transpose_strided(x, conv.weight.val(), sh, ph) {
        Ok(y) => add_bias(y, conv.bias.as_ref().map(|b| b.val())),
        Err(x) => conv.forward(x),
    }
}

/// `y` plus a bias per channel, when there is one.
fn add_bias(y: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    match bias {
        Some(bias) => {
            let out = y.dims()[1];
            y + bias.reshape([1, out, 1, 1])
        }
        None => y,
    }
}

/// Batch norm on flex: fovea's own kernels, in training with the running statistics updated as
/// Burn's `BatchNorm` updates them, followed by 2 × 2 max pooling in the same pass when
/// `pool_2x2`; Burn's layer otherwise. Also says whether it pooled.
pub(crate) fn normalize(n: &BatchNorm, x: Tensor<4>, pool_2x2: bool) -> (Tensor<4>, bool) {
    let params = || [n.gamma.val(), n.beta.val()];
    if !x.device().is_autodiff() {
        // inference: the running statistics
        let [gamma, beta] = params();
        let (mean, var) = (n.running_mean.value(), n.running_var.value());
        let args = [gamma, beta, mean, var];
        return match fovea_kernels::batch_norm_eval(x, args, n.epsilon, pool_2x2) {
            Ok(y) => (y, pool_2x2),
            Err(x) => (n.forward(x), false),
        };
    }
    if !n.training.is_enabled() {
        return (n.forward(x), false);
    }
    let [gamma, beta] = params();
    match fovea_kernels::batch_norm_train(x, gamma, beta, n.epsilon, pool_2x2) {
        Ok((out, mean, var)) => {
            let device = out.device();
            let blend = |running: Tensor<1>, batch: Tensor<1>| {
                running
                    .to_device(&device)
                    .mul_scalar(1.0 - n.momentum)
                    .add(batch.mul_scalar(n.momentum))
                    .detach()
            };
            n.running_mean
                .update(blend(n.running_mean.value_sync(), mean));
            n.running_var.update(blend(n.running_var.value_sync(), var));
            (out, pool_2x2)
        }
        Err(x) => (n.forward(x), false),
    }
}

/// Whether `p` pools 2 × 2 windows of stride 2 without padding (fovea's kernels on flex).
pub(crate) fn is_2x2(p: &MaxPool2d) -> bool {
    p.kernel_size == [2, 2]
        && p.stride == [2, 2]
        && p.dilation == [1, 1]
        && !p.ceil_mode
        && matches!(p.padding, PaddingConfig2d::Valid)
}

/// Max pooling: fovea's own kernel for 2 × 2 windows of stride 2 on flex (same result), Burn's
/// pooling otherwise.
pub(crate) fn pool(p: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    if !is_2x2(p) {
        return p.forward(x);
    }
    fovea_kernels::max_pool_2x2(x).unwrap_or_else(|x| p.forward(x))
}
