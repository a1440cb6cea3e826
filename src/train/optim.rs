//! Builds the optimizer `[train]` names: SGD (momentum, Nesterov), Adam or AdamW, with weight
//! decay and per-parameter gradient-norm clipping. Adam is `FusedAdam`: Burn's, its step made in
//! one pass on flex.

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    Adam, AdamConfig, AdamState, AdamWConfig, AdaptiveMomentumState, LearningRate, ModuleOptimizer,
    Optimizer, SgdConfig,
};
use burn::prelude::*;

use crate::models::flex_kernels::{self, AdamTerms};

use super::config::{OptimizerKind, TrainConfig};

pub fn build(t: &TrainConfig) -> ModuleOptimizer {
    let clip = t.grad_clip.map(|c| GradientClippingConfig::Norm(c as f32));
    let decay = (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32));
    match t.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((t.momentum > 0.0).then(|| MomentumConfig {
                momentum: t.momentum,
                dampening: 0.0,
                nesterov: t.nesterov,
            }))
            .with_weight_decay(decay)
            .with_gradient_clipping(clip)
            .init(),
        OptimizerKind::Adam => {
            let optim = ModuleOptimizer::from(FusedAdam::new(decay.map(|d| d.penalty)));
            match clip {
                Some(clip) => optim.with_grad_clipping(clip.init()),
                None => optim,
            }
        }
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_weight_decay(t.weight_decay as f32)
            .with_grad_clipping(clip)
            .init(),
    }
}

/// Burn's Adam (same state, so checkpoints are Burn's `AdamState`s), its step on flex made in
/// one pass over the parameter, gradient and moments (`flex_kernels::adam_step`) with the same
/// operations in the same order: the same values as Burn's to the bit. Anywhere else Burn's own.
#[derive(Clone)]
pub struct FusedAdam {
    burn: Adam,
    decay: Option<f32>,
}

/// Adam's β₁, β₂ and ε: Burn's defaults.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

impl FusedAdam {
    /// With L2 weight decay of `decay`, if any.
    pub fn new(decay: Option<f32>) -> Self {
        let config = AdamConfig::new()
            .with_beta_1(BETA_1)
            .with_beta_2(BETA_2)
            .with_epsilon(EPSILON)
            .with_weight_decay(decay.map(WeightDecayConfig::new));
        FusedAdam {
            burn: config.build(),
            decay,
        }
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let time = state.as_ref().map_or(1, |s| s.momentum.time + 1);
        // as Burn's `AdaptiveMomentum::transform` computes them
        let bias_correction2_sqrt = (1.0 - BETA_2.powi(time as i32)).sqrt();
        let terms = AdamTerms {
            beta_1: BETA_1,
            beta_2: BETA_2,
            one_minus_beta_1: 1.0 - BETA_1,
            one_minus_beta_2: 1.0 - BETA_2,
            factor: bias_correction2_sqrt / (1.0 - BETA_1.powi(time as i32)),
            epsilon: EPSILON * bias_correction2_sqrt,
            lr: lr as f32,
            decay: self.decay,
            first: state.is_none(),
        };
        let moments = state
            .clone()
            .map(|s| (s.momentum.moment_1, s.momentum.moment_2));
        match flex_kernels::adam_step(tensor, grad, moments, terms) {
            Ok([tensor, moment_1, moment_2]) => {
                let momentum = AdaptiveMomentumState::new(time, moment_1, moment_2);
                (tensor, Some(AdamState::new(momentum)))
            }
            Err((tensor, grad, _)) => self.burn.step(lr, tensor, grad, state),
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        Adam::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::prelude::*;

    use super::*;

    /// Weights `[a, b]` of a 2→1 linear layer after one step on loss = x·w with x = (1, 2), whose
    /// gradient is x itself.
    fn one_step(t: &TrainConfig, lr: f64) -> Vec<f32> {
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
        let sgd = TrainConfig {
            optimizer: OptimizerKind::Sgd,
            momentum: 0.0,
            ..Default::default()
        };
        // plain SGD: w - lr·g
        let w = one_step(&sgd, 0.1);
        assert!(close(&w, &[0.4, -0.45]), "{w:?}");
        // L2 weight decay adds wd·w to the gradient
        let w = one_step(
            &TrainConfig {
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
        let nesterov = TrainConfig {
            momentum: 0.9,
            nesterov: true,
            ..sgd.clone()
        };
        let w = one_step(&nesterov, 0.1);
        assert!(close(&w, &[0.5 - 0.19, -0.25 - 0.38]), "{w:?}");
        // Adam's first step moves every weight by lr against the sign of its gradient
        let adam = TrainConfig {
            optimizer: OptimizerKind::Adam,
            ..Default::default()
        };
        let w = one_step(&adam, 0.01);
        assert!(close(&w, &[0.49, -0.26]), "{w:?}");
        // AdamW also shrinks the weights by lr·wd·w (decoupled)
        let adamw = TrainConfig {
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
    fn the_fused_adam_takes_burns_steps_to_the_bit() {
        let device = Device::flex().autodiff();
        let data = |n: usize, seed: f32| -> Vec<f32> {
            (0..n).map(|i| ((i as f32 + seed) * 0.7).sin()).collect()
        };
        // five steps of a 5 → 3 layer from the same weights and inputs
        let run = |mut optim: ModuleOptimizer| -> Vec<f32> {
            let mut layer: Linear = LinearConfig::new(5, 3).init(&device);
            let weight = TensorData::new(data(15, 0.0), [5, 3]);
            layer.weight = burn::module::Param::from_tensor(Tensor::from_data(weight, &device));
            let bias = Tensor::from_data(TensorData::new(data(3, 9.0), [3]), &device);
            layer.bias = Some(burn::module::Param::from_tensor(bias));
            for step in 0..5 {
                let x = TensorData::new(data(8, step as f32 * 3.0), [4, 2]);
                let x = Tensor::<2>::from_data(x, &device)
                    .repeat_dim(1, 3)
                    .slice([0..4, 0..5]);
                let loss = layer.forward(x).powi_scalar(2).sum();
                let grads = GradientsParams::from_grads(loss.backward(), &layer);
                layer = optim.step(0.01, layer, grads);
            }
            crate::models::flat_params(&layer)
        };
        for decay in [None, Some(0.05)] {
            let burn = AdamConfig::new()
                .with_weight_decay(decay.map(WeightDecayConfig::new))
                .init();
            let (theirs, ours) = (run(burn), run(ModuleOptimizer::from(FusedAdam::new(decay))));
            assert_eq!(ours, theirs, "weight decay {decay:?}");
        }
    }

    #[test]
    fn gradient_clipping_caps_the_gradient_norm() {
        let sgd = TrainConfig {
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
            &TrainConfig {
                grad_clip: Some(10.0),
                ..sgd
            },
            0.1,
        );
        assert!(close(&w, &[0.4, -0.45]), "{w:?}");
    }
}
