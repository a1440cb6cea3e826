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
use fovea::models::flex_kernels;

const RUNS: usize = 30;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
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

fn main() {
    // The allocator settings `fovea` itself runs with (src/main.rs).
    // SAFETY: mallopt only changes allocator settings; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
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
    let conv1 = Conv2dConfig::new([1, 32], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .init(&device);
    let w1 = conv1.weight.val();
    add(time(
        "conv 1→32 (fovea kernel)",
        [b, 1, 28, 28],
        &device,
        |x| flex_kernels::conv_same(x, w1.clone()).unwrap(),
    ));
    let gamma = Tensor::<1>::ones([32], &device).require_grad();
    let beta = Tensor::<1>::zeros([32], &device).require_grad();
    add(time(
        "batch norm 32×28×28",
        [b, 32, 28, 28],
        &device,
        |x| {
            flex_kernels::batch_norm_train(x, gamma.clone(), beta.clone(), 1e-5)
                .unwrap()
                .0
        },
    ));
    add(time(
        "max pool 2×2 32×28×28",
        [b, 32, 28, 28],
        &device,
        |x| flex_kernels::max_pool_2x2(x).unwrap(),
    ));
    add(time("relu 32×14×14", [b, 32, 14, 14], &device, |x| {
        burn::tensor::activation::relu(x)
    }));
    let conv2 = Conv2dConfig::new([32, 64], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .init(&device);
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
        |x| flex_kernels::conv_unfolded(x, w2.clone()).unwrap(),
    );
    {
        let d = Device::flex();
        let (a, bm) = (random([64, 288], &d), random([288, 64 * 196], &d));
        let mut v = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let _ = a.clone().matmul(bm.clone()).slice_dim(0, 0..1).into_data();
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let ms = median(v);
        println!(
            "  matmul 64×288 · 288×12544: {ms:.2} ms, {:.1} GFLOP/s",
            2.0 * 64.0 * 288.0 * 12544.0 / ms / 1e6
        );
    }
    let gamma = Tensor::<1>::ones([64], &device).require_grad();
    let beta = Tensor::<1>::zeros([64], &device).require_grad();
    add(time(
        "batch norm 64×14×14",
        [b, 64, 14, 14],
        &device,
        |x| {
            flex_kernels::batch_norm_train(x, gamma.clone(), beta.clone(), 1e-5)
                .unwrap()
                .0
        },
    ));
    add(time(
        "max pool 2×2 64×14×14",
        [b, 64, 14, 14],
        &device,
        |x| flex_kernels::max_pool_2x2(x).unwrap(),
    ));
    add(time("relu 64×7×7", [b, 64, 7, 7], &device, |x| {
        burn::tensor::activation::relu(x)
    }));
    let dropout = DropoutConfig::new(0.3).init();
    add(time("dropout 0.3 [64,3136]", [b, 3136], &device, |x| {
        dropout.forward(x)
    }));
    let fc1 = LinearConfig::new(3136, 128).init(&device);
    add(time("linear 3136→128", [b, 3136], &device, |x| {
        fc1.forward(x)
    }));
    add(time("relu + dropout [64,128]", [b, 128], &device, |x| {
        dropout.forward(burn::tensor::activation::relu(x))
    }));
    let fc2 = LinearConfig::new(128, 10).init(&device);
    add(time("linear 128→10", [b, 128], &device, |x| {
        fc2.forward(x)
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
    let mut steps = Vec::new();
    for i in 0..RUNS + 3 {
        let t = Instant::now();
        let logits = model.forward(x.clone());
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits, labels.clone());
        let grads = loss.backward();
        let _ = grads;
        if i >= 3 {
            steps.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!(
        "{:34} {:>26.2}",
        "whole model, forward + backward",
        median(steps)
    );
}
