//! Adam's step in one pass over a parameter, its gradient and its two moments (Burn's `Adam`
//! makes a dozen element-wise passes), and `FusedAdam`, the optimizer that takes it on flex
//! and Burn's step anywhere else: the same operations in the same order, so the same values to
//! the bit and the same checkpoints.

use burn::backend::Dispatch;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;
use std::mem::MaybeUninit;

use crate::extension::{AdamTerms, FlexKernels, FlexTensor, on_flex};
use crate::simd::{values, written};

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

/// Values per task of `adam_forward`.
const ADAM_RUN: usize = 1 << 14;

/// `adam_step`'s pass over `[param, grad, moment_1, moment_2]` (the moments not read on the
/// first step): the new parameter, first and second moments, in runs of `ADAM_RUN` side by side.
pub(crate) fn adam_forward(
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

/// Burn's Adam (the same state, so checkpoints are Burn's `AdamState`s), its step on flex made
/// in one pass over the parameter, gradient and moments (`adam_step`) with the same operations
/// in the same order: the same values as Burn's to the bit. Anywhere else Burn's own.
#[derive(Clone)]
pub struct FusedAdam {
    burn: Adam,
    beta_1: f32,
    beta_2: f32,
    decay: Option<f32>,
}

/// Adam's ε: Burn's default.
const EPSILON: f32 = 1e-5;

impl FusedAdam {
    /// With the moments' decay rates β₁, β₂ and L2 weight decay of `decay`, if any.
    pub fn new(beta_1: f32, beta_2: f32, decay: Option<f32>) -> Self {
        let config = AdamConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(EPSILON)
            .with_weight_decay(decay.map(WeightDecayConfig::new));
        FusedAdam {
            burn: config.build(),
            beta_1,
            beta_2,
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
        let (beta_1, beta_2) = (self.beta_1, self.beta_2);
        let time = state.as_ref().map_or(1, |s| s.momentum.time + 1);
        // as Burn's `AdaptiveMomentum::transform` computes them
        let bias_correction2_sqrt = (1.0 - beta_2.powi(time as i32)).sqrt();
        let terms = AdamTerms {
            beta_1,
            beta_2,
            one_minus_beta_1: 1.0 - beta_1,
            one_minus_beta_2: 1.0 - beta_2,
            factor: bias_correction2_sqrt / (1.0 - beta_1.powi(time as i32)),
            epsilon: EPSILON * bias_correction2_sqrt,
            lr: lr as f32,
            decay: self.decay,
            first: state.is_none(),
        };
        let moments = state
            .clone()
            .map(|s| (s.momentum.moment_1, s.momentum.moment_2));
        match adam_step(tensor, grad, moments, terms) {
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
    use burn::optim::{GradientsParams, ModuleOptimizer};

    use super::*;
    use crate::testing::host;

    #[test]
    fn the_fused_adam_takes_burns_steps_to_the_bit() {
        let device = Device::flex().autodiff();
        let data = |n: usize, seed: f32| -> Vec<f32> {
            (0..n).map(|i| ((i as f32 + seed) * 0.7).sin()).collect()
        };
        // five steps of an `inputs` → `outputs` layer from the same weights and inputs
        let run = |mut optim: ModuleOptimizer, inputs: usize, outputs: usize| -> Vec<f32> {
            let mut layer: Linear = LinearConfig::new(inputs, outputs).init(&device);
            let weight = TensorData::new(data(inputs * outputs, 0.0), [inputs, outputs]);
            layer.weight = burn::module::Param::from_tensor(Tensor::from_data(weight, &device));
            let bias = Tensor::from_data(TensorData::new(data(outputs, 9.0), [outputs]), &device);
            layer.bias = Some(burn::module::Param::from_tensor(bias));
            for step in 0..5 {
                let x = TensorData::new(data(4 * inputs, step as f32 * 3.0), [4, inputs]);
                let x = Tensor::<2>::from_data(x, &device);
                let loss = layer.forward(x).powi_scalar(2).sum();
                let grads = GradientsParams::from_grads(loss.backward(), &layer);
                layer = optim.step(0.01, layer, grads);
            }
            let mut values = host(layer.weight.val());
            values.extend(host(layer.bias.expect("a bias").val()));
            values
        };
        // Burn's defaults, and a GAN's β₁ = 0.5; with and without weight decay
        for (beta_1, beta_2) in [(0.9, 0.999), (0.5, 0.999)] {
            for decay in [None, Some(0.05)] {
                let burn = || {
                    AdamConfig::new()
                        .with_beta_1(beta_1)
                        .with_beta_2(beta_2)
                        .with_weight_decay(decay.map(WeightDecayConfig::new))
                        .init()
                };
                let fused = || ModuleOptimizer::from(FusedAdam::new(beta_1, beta_2, decay));
                // a weight of 15 values, and one of 20,000: more than one of the kernel's runs
                for (inputs, outputs) in [(5, 3), (200, 100)] {
                    let ours = run(fused(), inputs, outputs);
                    let theirs = run(burn(), inputs, outputs);
                    assert_eq!(
                        ours, theirs,
                        "{inputs} → {outputs}: betas {beta_1}, {beta_2}, weight decay {decay:?}"
                    );
                }
            }
        }
    }
}
