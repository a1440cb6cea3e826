//! Where a training step of the reference CNN goes: each layer timed alone on flex with the
//! step's shapes (batch 64, Fashion-MNIST-sized images), forward and backward, median of 30.
//!
//!     cargo run --release --example step_profile
//!
//! The backward time of a layer is that of `(layer(x) · r).sum().backward()` for a fixed random
//! `r`, so it includes one element-wise product and its gradient (the "identity" row measures
//! that overhead on the largest tensor).

use std::time::Instant;

use burn::nn::conv::Conv2dConfig;
use burn::nn::{DropoutConfig, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use fovea::models::cnn::CnnConfig;

const RUNS: usize = 30;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
}

/// Median milliseconds of `runs` calls of `f`, after three untimed.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

/// Median forward and backward milliseconds of `f` on an input of `shape`.
fn time<const D: usize, const E: usize>(
    name: &str,
    shape: [usize; D],
    device: &Device,
    f: impl Fn(Tensor<D>) -> Tensor<E>,
) -> (f64, f64) {
    let x = random(shape, device).require_grad();
    let out_shape = f(x.clone()).dims();
    let r = random(out_shape, device);
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    for i in 0..RUNS + 3 {
        let t = Instant::now();
        let y = f(x.clone());
        let _ = y.clone().slice_dim(0, 0..1).into_data(); // wait for it
        let t1 = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let grads = (y * r.clone()).sum().backward();
        let g = x.grad(&grads).expect("a gradient for x");
        let _ = g.slice_dim(0, 0..1).into_data();
        let t2 = t.elapsed().as_secs_f64();
        if i >= 3 {
            fwd.push(t1 * 1e3);
            bwd.push(t2 * 1e3);
        }
    }
    let (f, b) = (median(fwd), median(bwd));
    println!("{name:34} {f:8.2} {b:8.2} {:8.2}", f + b);
    (f, b)
}

/// Batch norm, 2 × 2 max pooling and ReLU of a conv block with `c` channels of `hw × hw`: their
/// forward and backward milliseconds, summed, with batch norm and pooling as the model runs them
/// (one pass); the two apart are timed too, for comparison.
fn block_tail(c: usize, hw: usize, device: &Device) -> (f64, f64) {
    let b = 64;
    let gamma = Tensor::<1>::ones([c], device).require_grad();
    let beta = Tensor::<1>::zeros([c], device).require_grad();
    let norm = |x: Tensor<4>, pool: bool| {
        fovea_kernels::batch_norm_train(x, gamma.clone(), beta.clone(), 1e-5, pool)
            .unwrap()
            .0
    };
    time(
        &format!("  batch norm {c}×{hw}×{hw} (apart)"),
        [b, c, hw, hw],
        device,
        |x| norm(x, false),
    );
    time(
        &format!("  max pool 2×2 {c}×{hw}×{hw} (apart)"),
        [b, c, hw, hw],
        device,
        |x| fovea_kernels::max_pool_2x2(x).unwrap(),
    );
    let parts = [
        time(
            &format!("batch norm + pool {c}×{hw}×{hw}"),
            [b, c, hw, hw],
            device,
            |x| norm(x, true),
        ),
        time(
            &format!("relu {c}×{}×{}", hw / 2, hw / 2),
            [b, c, hw / 2, hw / 2],
            device,
            burn::tensor::activation::relu,
        ),
    ];
    parts
        .iter()
        .fold((0.0, 0.0), |(f, b), (pf, pb)| (f + pf, b + pb))
}

fn main() {
    // the allocator settings the `fovea` binary runs with
    fovea::device::keep_freed_memory();
    let device = Device::flex().autodiff();
    let b = 64;
    println!(
        "{:34} {:>8} {:>8} {:>8}",
        "layer (batch 64)", "fwd ms", "bwd ms", "sum"
    );
    let mut total = (0.0, 0.0);
    let mut add = |(f, b): (f64, f64)| {
        total.0 += f;
        total.1 += b;
    };
    time("identity [64,32,28,28]", [b, 32, 28, 28], &device, |x| x);
    let conv = |channels: [usize; 2]| {
        Conv2dConfig::new(channels, [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .with_bias(false)
            .init(&device)
    };
    let w1 = conv([1, 32]).weight.val();
    add(time(
        "conv 1→32 (fovea kernel)",
        [b, 1, 28, 28],
        &device,
        |x| fovea_kernels::conv_same(x, w1.clone()).unwrap(),
    ));
    add(block_tail(32, 28, &device));
    let conv2 = conv([32, 64]);
    add(time(
        "conv 32→64 (Burn's)",
        [b, 32, 14, 14],
        &device,
        |x| conv2.forward(x),
    ));
    let w2 = conv2.weight.val();
    time(
        "conv 32→64 (fovea unfolded)",
        [b, 32, 14, 14],
        &device,
        |x| fovea_kernels::conv_unfolded(x, w2.clone()).unwrap(),
    );
    // the matrix product the unfolded convolution's forward pass is, alone
    let flex = Device::flex();
    let (a, m) = (random([64, 288], &flex), random([288, 64 * 196], &flex));
    let ms = median_ms(20, || {
        let _ = a.clone().matmul(m.clone()).slice_dim(0, 0..1).into_data();
    });
    println!(
        "  matmul 64×288 · 288×12544: {ms:.2} ms, {:.1} GFLOP/s",
        2.0 * 64.0 * 288.0 * 12544.0 / ms / 1e6
    );
    add(block_tail(64, 14, &device));
    let dropout = DropoutConfig::new(0.3).init();
    add(time(
        "dropout 0.3 [64,3136] (fovea)",
        [b, 3136],
        &device,
        |x| fovea_kernels::dropout(&dropout, x),
    ));
    let fc1 = LinearConfig::new(3136, 128).init(&device);
    time("  linear 3136→128 (Burn's)", [b, 3136], &device, |x| {
        fc1.forward(x)
    });
    add(time("linear 3136→128 (fovea)", [b, 3136], &device, |x| {
        fovea_kernels::linear(&fc1, x)
    }));
    add(time("relu + dropout [64,128]", [b, 128], &device, |x| {
        fovea_kernels::dropout(&dropout, burn::tensor::activation::relu(x))
    }));
    let fc2 = LinearConfig::new(128, 10).init(&device);
    add(time("linear 128→10 (fovea)", [b, 128], &device, |x| {
        fovea_kernels::linear(&fc2, x)
    }));
    println!(
        "{:34} {:8.2} {:8.2} {:8.2}",
        "sum of the layers",
        total.0,
        total.1,
        total.0 + total.1
    );

    // The whole model, forward + backward, for comparison with the sum of its layers.
    let shape = fovea::data::InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    let model = CnnConfig::default().init(shape, 10, &device).unwrap();
    let x = random([b, 1, 28, 28], &device);
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new((0..b as i64).map(|i| i % 10).collect::<Vec<_>>(), [b]),
        &device,
    );
    let loss = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
    let ms = median_ms(RUNS, || {
        let _ = loss
            .forward(model.forward(x.clone()), labels.clone())
            .backward();
    });
    println!("{:34} {:>26.2}", "whole model, forward + backward", ms);

    // The same plus the optimizer step the training loop takes (config/cnn.toml's Adam).
    let mut optim = burn::optim::AdamConfig::new().init();
    let mut model = Some(model);
    let ms = median_ms(RUNS, || {
        let m = model.take().unwrap();
        let grads = loss
            .forward(m.forward(x.clone()), labels.clone())
            .backward();
        let grads = burn::optim::GradientsParams::from_grads(grads, &m);
        let m = optim.step(1e-3, m, grads);
        let _ = m.forward(x.clone().slice_dim(0, 0..1)).into_data(); // wait for it
        model = Some(m);
    });
    println!("{:34} {:>26.2}", "  + Adam step", ms);
}
