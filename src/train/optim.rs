//! Builds the optimizer `[train]` names: SGD (momentum, Nesterov), Adam or AdamW, with weight
//! decay and per-parameter gradient-norm clipping. Adam is `fovea_kernels::FusedAdam`: Burn's,
//! its step made in one pass on flex. Also `frozen`: a network another one trains through.

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer, SgdConfig};

use fovea_kernels::FusedAdam;

use super::config::{OptimizerConfig, OptimizerKind};

/// The optimizer `o` describes, fresh.
pub fn build(o: &OptimizerConfig) -> ModuleOptimizer {
    let clip = o.grad_clip.map(|c| GradientClippingConfig::Norm(c as f32));
    let decay = (o.weight_decay > 0.0).then(|| WeightDecayConfig::new(o.weight_decay as f32));
    let (beta_1, beta_2) = (o.beta1 as f32, o.beta2 as f32);
    match o.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((o.momentum > 0.0).then(|| MomentumConfig {
                momentum: o.momentum,
                dampening: 0.0,
                nesterov: o.nesterov,
            }))
            .with_weight_decay(decay)
            .with_gradient_clipping(clip)
            .init(),
        OptimizerKind::Adam => {
            let fused = FusedAdam::new(beta_1, beta_2, decay.map(|d| d.penalty));
            let optim = ModuleOptimizer::from(fused);
            match clip {
                Some(clip) => optim.with_grad_clipping(clip.init()),
                None => optim,
            }
        }
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_weight_decay(o.weight_decay as f32)
            .with_grad_clipping(clip)
            .init(),
    }
}

/// `f(&m)` with `m`'s weights frozen: what `f` computes still carries gradients back to its
/// inputs, but none are computed for `m`'s weights (a GAN's discriminator in the generator's
/// step). Returns `m` trainable again, and the result.
pub fn frozen<M: Module, R>(m: M, f: impl FnOnce(&M) -> R) -> (M, R) {
    let m = m.set_require_grad(false);
    let out = f(&m);
    (m.set_require_grad(true), out)
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::prelude::*;

    use super::*;

    /// Weights `[a, b]` of a 2→1 linear layer after one step on loss = x·w with x = (1, 2), whose
    /// gradient is x itself.
    fn one_step(t: &OptimizerConfig, lr: f64) -> Vec<f32> {
        let device = Device::flex().autodiff();
        let mut layer: Linear = LinearConfig::new(2, 1).with_bias(false).init(&device);
        layer.weight =
            burn::module::Param::from_tensor(Tensor::<2>::from_floats([[0.5], [-0.25]], &device));
        let x = Tensor::<2>::from_floats([[1.0, 2.0]], &device);
        let loss = layer.forward(x).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        let mut optim = build(t);
        let layer = optim.step(lr, layer, grads);
        crate::models::flat_params(&layer)
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn each_optimizer_takes_its_textbook_first_step() {
        let sgd = OptimizerConfig {
            optimizer: OptimizerKind::Sgd,
            momentum: 0.0,
            ..Default::default()
        };
        // plain SGD: w - lr·g
        let w = one_step(&sgd, 0.1);
        assert!(close(&w, &[0.4, -0.45]), "{w:?}");
        // L2 weight decay adds wd·w to the gradient
        let w = one_step(
            &OptimizerConfig {
                weight_decay: 0.5,
                ..sgd.clone()
            },
            0.1,
        );
        assert!(
            close(&w, &[0.5 - 0.1 * 1.25, -0.25 - 0.1 * (2.0 - 0.125)]),
            "{w:?}"
        );
        // Nesterov momentum m: the first step moves by lr·(1 + m)·g
        let nesterov = OptimizerConfig {
            momentum: 0.9,
            nesterov: true,
            ..sgd.clone()
        };
        let w = one_step(&nesterov, 0.1);
        assert!(close(&w, &[0.5 - 0.19, -0.25 - 0.38]), "{w:?}");
        // Adam's first step moves every weight by lr against the sign of its gradient
        let adam = OptimizerConfig {
            optimizer: OptimizerKind::Adam,
            ..Default::default()
        };
        let w = one_step(&adam, 0.01);
        assert!(close(&w, &[0.49, -0.26]), "{w:?}");
        // AdamW also shrinks the weights by lr·wd·w (decoupled)
        let adamw = OptimizerConfig {
            optimizer: OptimizerKind::Adamw,
            weight_decay: 0.5,
            ..Default::default()
        };
        let w = one_step(&adamw, 0.01);
        assert!(
            close(
                &w,
                &[0.5 * (1.0 - 0.005) - 0.01, -0.25 * (1.0 - 0.005) - 0.01]
            ),
            "{w:?}"
        );
    }

    #[test]
    fn gradient_clipping_caps_the_gradient_norm() {
        let sgd = OptimizerConfig {
            optimizer: OptimizerKind::Sgd,
            momentum: 0.0,
            grad_clip: Some(0.5),
            ..Default::default()
        };
        // g = (1, 2) has norm √5; clipped to norm 0.5 it is (1, 2)·0.5/√5
        let w = one_step(&sgd, 1.0);
        let s = 0.5 / 5f32.sqrt();
        assert!(close(&w, &[0.5 - s, -0.25 - 2.0 * s]), "{w:?}");
        // a limit above the norm changes nothing
        let w = one_step(
            &OptimizerConfig {
                grad_clip: Some(10.0),
                ..sgd
            },
            0.1,
        );
        assert!(close(&w, &[0.4, -0.45]), "{w:?}");
    }
}
