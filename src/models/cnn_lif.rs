//! The CNN with a spiking output layer: the CNN's conv blocks (the same `ConvStack`, run once per
//! image) give the "V4" layer, 64×7×7 = 3136 neurons in the reference; its activations become
//! spike trains over `steps` time steps, which drive a layer of leaky integrate-and-fire (LIF)
//! output neurons, optionally through hidden LIF layers.
//!
//! The output neuron's membrane potential follows the survey's equation
//!
//! ```text
//! V(t) = Σᵢ wᵢ Σₖ K(t − tᵢᵏ) + V_rest
//! ```
//!
//! with i over the V4 neurons, tᵢᵏ the times of their spikes and K the post-synaptic kernel
//! (`Neuron::step` says how, in discrete time). Training goes through the spike with a surrogate
//! gradient; the loss reads the output layer through a `Readout`.

use anyhow::Result;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

use super::cnn::{BlockConfig, ConvStack, reference_blocks, validate_layers};
use crate::data::InputShape;

/// How V4 activations become spikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Coding {
    /// Each V4 activation is the constant input current of a non-leaky integrate-and-fire neuron
    /// (threshold `v4_threshold`, reset by subtraction): deterministic, rate ≈ activation.
    Direct,
    /// Each step, each V4 neuron spikes with probability `clamp(activation, 0, 1)` (Bernoulli
    /// rate coding), drawn from the device RNG the run seeds.
    Poisson,
}

/// What the cross-entropy loss (and the prediction) reads from the output layer after t steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Readout {
    /// The number of spikes each output neuron fired in steps 1..t.
    Count,
    /// The highest membrane potential (before reset) in steps 1..t.
    MaxMembrane,
    /// The membrane potential (before reset) at step t.
    FinalMembrane,
}

/// How an input spike moves the membrane: the kernel K of the equation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kernel {
    /// K(s) = βˢ: the spike's weight lands on the membrane at once and leaks away.
    Exponential,
    /// K(s) = (1−α)(βˢ⁺¹ − αˢ⁺¹)/(β − α): a synaptic current with decay α = exp(−1/tau_rise)
    /// charges the membrane, so the response rises over a few steps and then decays.
    DoubleExponential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reset {
    /// A spike subtracts (threshold − V_rest), keeping the excess.
    Subtract,
    /// A spike sets the membrane to V_rest.
    ToRest,
}

/// The surrogate for dΘ(x)/dx, Θ the Heaviside step and x = V − threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Surrogate {
    /// (a/2) / (1 + (π/2 · a · x)²), the derivative of arctan(π/2 · a · x)/π + 1/2. Default a = 2.
    Arctan,
    /// 1 / (1 + k|x|)², the derivative of x / (1 + k|x|). Default k = 25.
    FastSigmoid,
    /// k · σ(kx)(1 − σ(kx)), the derivative of σ(kx). Default k = 4.
    Sigmoid,
}

impl Surrogate {
    fn default_slope(self) -> f64 {
        match self {
            Surrogate::Arctan => 2.0,
            Surrogate::FastSigmoid => 25.0,
            Surrogate::Sigmoid => 4.0,
        }
    }
}

/// `[model.neuron]`: the LIF neurons of the output (and hidden) layers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NeuronConfig {
    /// Membrane decay per step, in (0, 1]. Give `beta` or `tau`, not both.
    pub beta: Option<f64>,
    /// Membrane time constant in steps: beta = exp(−1/tau).
    pub tau: Option<f64>,
    pub threshold: f64,
    pub v_rest: f64,
    pub reset: Reset,
    /// Steps after a spike during which the neuron neither integrates input nor fires.
    pub refractory: usize,
    pub kernel: Kernel,
    /// Rise time constant of the double-exponential kernel, in steps.
    pub tau_rise: f64,
    pub surrogate: Surrogate,
    /// The surrogate's sharpness (a or k above); its default depends on the surrogate.
    pub slope: Option<f64>,
}

impl Default for NeuronConfig {
    fn default() -> Self {
        Self {
            beta: None,
            tau: None,
            threshold: 1.0,
            v_rest: 0.0,
            reset: Reset::Subtract,
            refractory: 0,
            kernel: Kernel::Exponential,
            tau_rise: 2.0,
            surrogate: Surrogate::Arctan,
            slope: None,
        }
    }
}

/// The default membrane decay when neither `beta` nor `tau` is given.
pub const DEFAULT_BETA: f64 = 0.9;

impl NeuronConfig {
    pub fn validate(&self) -> Result<(), String> {
        match (self.beta, self.tau) {
            (Some(_), Some(_)) => {
                return Err("neuron: give beta or tau, not both".into());
            }
            (Some(b), None) if !(b > 0.0 && b <= 1.0) => {
                return Err(format!("neuron.beta must be in (0, 1] (got {b})"));
            }
            (None, Some(t)) if !(t > 0.0 && t.is_finite()) => {
                return Err(format!(
                    "neuron.tau must be a positive number of steps (got {t})"
                ));
            }
            _ => {}
        }
        if !(self.threshold.is_finite() && self.v_rest.is_finite()) || self.threshold <= self.v_rest
        {
            return Err(format!(
                "neuron.threshold ({}) must be above neuron.v_rest ({})",
                self.threshold, self.v_rest
            ));
        }
        if !(self.tau_rise > 0.0 && self.tau_rise.is_finite()) {
            return Err(format!(
                "neuron.tau_rise must be a positive number of steps (got {})",
                self.tau_rise
            ));
        }
        if let Some(s) = self.slope
            && !(s > 0.0 && s.is_finite())
        {
            return Err(format!("neuron.slope must be positive (got {s})"));
        }
        Ok(())
    }

    /// The neuron these settings describe.
    pub fn neuron(&self) -> Neuron {
        let beta = match (self.beta, self.tau) {
            (Some(b), _) => b,
            (None, Some(t)) => (-1.0 / t).exp(),
            (None, None) => DEFAULT_BETA,
        };
        Neuron {
            beta,
            alpha: match self.kernel {
                Kernel::Exponential => 0.0,
                Kernel::DoubleExponential => (-1.0 / self.tau_rise).exp(),
            },
            threshold: self.threshold,
            v_rest: self.v_rest,
            reset: self.reset,
            refractory: self.refractory,
            surrogate: self.surrogate,
            slope: self.slope.unwrap_or(self.surrogate.default_slope()),
        }
    }
}

/// `[model] kind = "cnn-lif"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CnnLifConfig {
    /// Conv blocks, as in `kind = "cnn"`.
    pub blocks: Vec<BlockConfig>,
    /// Widths of hidden LIF layers between V4 and the output (none in the survey's layout).
    pub hidden: Vec<usize>,
    /// Dropout on the V4 activations (one mask for all time steps).
    pub dropout: f64,
    /// Time steps T the spiking part runs for.
    pub steps: usize,
    pub coding: Coding,
    /// Threshold of the V4 integrate-and-fire encoder (`coding = "direct"`).
    pub v4_threshold: f64,
    pub readout: Readout,
    pub neuron: NeuronConfig,
}

impl Default for CnnLifConfig {
    fn default() -> Self {
        Self {
            blocks: reference_blocks(),
            hidden: Vec::new(),
            dropout: 0.3,
            steps: 8,
            coding: Coding::Direct,
            v4_threshold: 1.0,
            readout: Readout::FinalMembrane,
            neuron: NeuronConfig::default(),
        }
    }
}

impl CnnLifConfig {
    pub fn validate(&self) -> Result<(), String> {
        validate_layers(&self.blocks, &self.hidden, self.dropout)?;
        if !(1..=1000).contains(&self.steps) {
            return Err(format!("steps must be in 1..=1000 (got {})", self.steps));
        }
        if !(self.v4_threshold > 0.0 && self.v4_threshold.is_finite()) {
            return Err(format!(
                "v4_threshold must be positive (got {})",
                self.v4_threshold
            ));
        }
        self.neuron.validate()
    }

    pub fn init(&self, input: InputShape, classes: usize, device: &Device) -> Result<CnnLif> {
        let (convs, v4) = ConvStack::init(&self.blocks, input, device)?;
        let mut width = v4.pixels();
        let mut layers = Vec::new();
        for &h in self.hidden.iter().chain([&classes]) {
            layers.push(LinearConfig::new(width, h).init(device));
            width = h;
        }
        let neuron = self.neuron.neuron();
        Ok(CnnLif {
            convs,
            dropout: DropoutConfig::new(self.dropout).init(),
            layers,
            neuron,
            encoder: Neuron {
                beta: 1.0,
                alpha: 0.0,
                threshold: self.v4_threshold,
                v_rest: 0.0,
                reset: Reset::Subtract,
                refractory: 0,
                surrogate: neuron.surrogate,
                slope: neuron.slope,
            },
            steps: self.steps,
            coding: self.coding,
            readout: self.readout,
        })
    }
}

/// One layer of (leaky) integrate-and-fire neurons, as numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neuron {
    /// Membrane decay per step, β = exp(−1/τ).
    pub beta: f64,
    /// Synaptic-current decay per step (0: exponential kernel).
    pub alpha: f64,
    pub threshold: f64,
    pub v_rest: f64,
    pub reset: Reset,
    pub refractory: usize,
    pub surrogate: Surrogate,
    pub slope: f64,
}

/// A layer's state between steps, each `[batch, neurons]`.
#[derive(Debug, Clone)]
pub struct LifState {
    /// Membrane potential V after the last reset.
    pub v: Tensor<2>,
    /// Synaptic current I (zero with the exponential kernel).
    pub i: Tensor<2>,
    /// Refractory steps left.
    pub refractory: Tensor<2>,
}

impl LifState {
    /// All neurons at rest, no current, none refractory.
    pub fn rest(neuron: &Neuron, shape: [usize; 2], device: &Device) -> Self {
        Self {
            v: Tensor::full(shape, neuron.v_rest, device),
            i: Tensor::zeros(shape, device),
            refractory: Tensor::zeros(shape, device),
        }
    }
}

/// What one step of a layer emits, each `[batch, neurons]`.
#[derive(Debug, Clone)]
pub struct Fired {
    /// 0/1 spikes (with the surrogate gradient).
    pub spikes: Tensor<2>,
    /// The membrane after charging, before the reset: what the threshold was compared with.
    pub membrane: Tensor<2>,
}

impl Neuron {
    /// One time step, charge → fire → reset, for input `x[t] = Σᵢ wᵢ Sᵢ[t] + b` `[batch, n]`:
    ///
    /// ```text
    /// I[t] = α·I[t−1] + (1 − α)·x[t]                       synaptic current (α = 0: I = x)
    /// a    = 1 if the neuron is not refractory, else 0
    /// H[t] = V_rest + β·(V[t−1] − V_rest) + a·I[t]          charge
    /// S[t] = a·Θ(H[t] − θ)                                  fire (surrogate gradient)
    /// V[t] = H[t] − S[t]·(θ − V_rest)     reset = "subtract"
    ///      = H[t] − S[t]·(H[t] − V_rest)  reset = "to-rest"
    /// r[t] = R if S[t] else max(r[t−1] − 1, 0)               refractory steps left
    /// ```
    ///
    /// Without resets this is `V(t) = Σᵢ wᵢ Σₖ K(t − tᵢᵏ) + V_rest` with K(s) = βˢ (α = 0) or
    /// K(s) = (1 − α)(βˢ⁺¹ − αˢ⁺¹)/(β − α). The reset's spike is detached (the gradient flows
    /// through the charge, not the reset), as is the refractory mask.
    pub fn step(&self, state: LifState, x: Tensor<2>) -> (LifState, Fired) {
        let i = if self.alpha == 0.0 {
            x
        } else {
            state.i.mul_scalar(self.alpha) + x.mul_scalar(1.0 - self.alpha)
        };
        // 1 where the neuron may integrate and fire, `[b, n]` (detached); only with a period.
        let active =
            (self.refractory > 0).then(|| state.refractory.clone().lower_equal_elem(0.0).float());
        let leaked = (state.v - self.v_rest).mul_scalar(self.beta);
        let membrane = match &active {
            None => leaked + i.clone(),
            Some(a) => leaked + i.clone() * a.clone(),
        }
        .add_scalar(self.v_rest);
        let spikes = match active {
            None => self.fire(membrane.clone()),
            Some(a) => self.fire(membrane.clone()) * a,
        };
        let s = spikes.clone().detach();
        let v = match self.reset {
            Reset::Subtract => {
                membrane.clone() - s.clone().mul_scalar(self.threshold - self.v_rest)
            }
            Reset::ToRest => {
                membrane.clone() * s.clone().neg().add_scalar(1.0)
                    + s.clone().mul_scalar(self.v_rest)
            }
        };
        let refractory = if self.refractory == 0 {
            state.refractory
        } else {
            let left = state.refractory.sub_scalar(1.0).clamp_min(0.0);
            left.clone() + s.clone() * (left.neg().add_scalar(self.refractory as f64))
        };
        (LifState { v, i, refractory }, Fired { spikes, membrane })
    }

    /// Θ(V − θ) forward, the surrogate derivative backward: `hard + (x − x̄)·g(x̄)` with x̄ the
    /// detached `x = V − θ`; the second term is exactly zero in value and carries `g` as gradient.
    pub fn fire(&self, membrane: Tensor<2>) -> Tensor<2> {
        let x = membrane.sub_scalar(self.threshold);
        let xd = x.clone().detach();
        let hard = xd.clone().greater_equal_elem(0.0).float();
        let g = self.surrogate_grad(xd);
        hard + (x.clone() - x.detach()) * g
    }

    /// The surrogate's dΘ/dx at `x = V − θ`.
    pub fn surrogate_grad(&self, x: Tensor<2>) -> Tensor<2> {
        let k = self.slope;
        match self.surrogate {
            Surrogate::Arctan => {
                let c = std::f64::consts::FRAC_PI_2 * k;
                x.mul_scalar(c)
                    .square()
                    .add_scalar(1.0)
                    .recip()
                    .mul_scalar(k / 2.0)
            }
            Surrogate::FastSigmoid => x.abs().mul_scalar(k).add_scalar(1.0).square().recip(),
            Surrogate::Sigmoid => {
                let s = sigmoid(x.mul_scalar(k));
                (s.clone() * s.neg().add_scalar(1.0)).mul_scalar(k)
            }
        }
    }
}

#[derive(Module, Debug)]
pub struct CnnLif {
    convs: ConvStack,
    dropout: Dropout,
    /// V4 → hidden… → output weights.
    layers: Vec<Linear>,
    #[module(skip)]
    neuron: Neuron,
    #[module(skip)]
    encoder: Neuron,
    #[module(skip)]
    steps: usize,
    #[module(skip)]
    coding: Coding,
    #[module(skip)]
    readout: Readout,
}

/// A simulation's record: the readout after each step run, and spike totals.
#[derive(Debug)]
pub struct Trace {
    /// `readouts[t]` `[batch, classes]`: the readout over steps 1..=t+1.
    pub readouts: Vec<Tensor<2>>,
    /// Total spikes of each layer (V4, hidden…, output), each `[1]`.
    pub spikes: Vec<Tensor<1>>,
    /// Neurons of each layer (V4, hidden…, output).
    pub neurons: Vec<usize>,
}

impl Trace {
    /// The readout after the last step run: the logits.
    pub fn logits(&self) -> Tensor<2> {
        self.readouts.last().expect("at least one step").clone()
    }
}

impl CnnLif {
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// `[b, c, h, w]` → logits `[b, classes]`: the readout after all steps.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.simulate(images, |_| false).logits()
    }

    /// Runs the conv front end once, then the spiking layers step by step until `steps` or until
    /// `stop(readout)` says so after a step.
    pub fn simulate(&self, images: Tensor<4>, mut stop: impl FnMut(&Tensor<2>) -> bool) -> Trace {
        let v4 =
            fovea_kernels::dropout(&self.dropout, self.convs.forward(images).flatten::<2>(1, 3)); // [b, 3136]
        let device = v4.device();
        let [b, n] = v4.dims();
        let mut encoder = LifState::rest(&self.encoder, [b, n], &device);
        // Poisson coding: each V4 neuron's spike probability per step.
        let p = (self.coding == Coding::Poisson).then(|| v4.clone().clamp(0.0, 1.0));
        let mut states: Vec<LifState> = self
            .layers
            .iter()
            .map(|l| LifState::rest(&self.neuron, [b, l.weight.dims()[1]], &device))
            .collect();
        let mut neurons = vec![n];
        neurons.extend(self.layers.iter().map(|l| l.weight.dims()[1]));
        let mut totals: Vec<Option<Tensor<1>>> = vec![None; neurons.len()];
        let mut readout: Option<Tensor<2>> = None;
        let mut readouts = Vec::with_capacity(self.steps);
        for _ in 0..self.steps {
            let mut spikes = match self.coding {
                Coding::Direct => {
                    let (s, fired) = self.encoder.step(encoder, v4.clone());
                    encoder = s;
                    fired.spikes
                }
                Coding::Poisson => {
                    let p = p.clone().expect("probabilities for Poisson coding");
                    let u = Tensor::<2>::random([b, n], Distribution::Default, &device);
                    let hard = u.lower(p.clone().detach()).float();
                    // Forward the 0/1 draw; backward, the gradient of p passes straight through.
                    p.clone() + (hard - p.detach())
                }
            };
            let mut fired = None;
            let mut layer_spikes = vec![spikes.clone()];
            for (layer, state) in self.layers.iter().zip(states.iter_mut()) {
                let (s, f) = self.neuron.step(state.clone(), layer.forward(spikes));
                *state = s;
                spikes = f.spikes.clone();
                layer_spikes.push(spikes.clone());
                fired = Some(f);
            }
            for (total, s) in totals.iter_mut().zip(layer_spikes) {
                let s = s.detach().sum();
                *total = Some(match total.take() {
                    Some(t) => t + s,
                    None => s,
                });
            }
            let out = fired.expect("an output layer");
            let now = match self.readout {
                Readout::Count => out.spikes,
                Readout::MaxMembrane | Readout::FinalMembrane => out.membrane,
            };
            let r = match (self.readout, readout.take()) {
                (_, None) => now,
                (Readout::Count, Some(r)) => r + now,
                (Readout::MaxMembrane, Some(r)) => r.max_pair(now),
                (Readout::FinalMembrane, Some(_)) => now,
            };
            readouts.push(r.clone());
            let done = stop(&r);
            readout = Some(r);
            if done {
                break;
            }
        }
        Trace {
            readouts,
            spikes: totals
                .into_iter()
                .map(|t| t.expect("one step run"))
                .collect(),
            neurons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neuron() -> Neuron {
        NeuronConfig::default().neuron()
    }

    fn row(values: &[f32]) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [1, values.len()]),
            &Device::flex(),
        )
    }

    fn read(t: Tensor<2>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    /// Feeds `inputs` (one value per step) to one neuron; returns (membrane before reset, spike)
    /// per step.
    fn run(n: &Neuron, inputs: &[f32]) -> Vec<(f32, f32)> {
        let device = Device::flex();
        let mut s = LifState::rest(n, [1, 1], &device);
        inputs
            .iter()
            .map(|&x| {
                let (next, f) = n.step(s.clone(), row(&[x]));
                s = next;
                (read(f.membrane)[0], read(f.spikes)[0])
            })
            .collect()
    }

    fn close(a: f32, b: f64) -> bool {
        (a as f64 - b).abs() < 1e-5
    }

    #[test]
    fn the_membrane_decays_by_beta_each_step() {
        // β = 0.5, V_rest = 0.2, one input of 0.6 below threshold 1: H = 0.2 + 0.6 = 0.8, then
        // 0.2 + 0.5·0.6 = 0.5, 0.2 + 0.25·0.6 = 0.35, 0.2 + 0.125·0.6 = 0.275.
        let n = Neuron {
            beta: 0.5,
            v_rest: 0.2,
            ..neuron()
        };
        let got = run(&n, &[0.6, 0.0, 0.0, 0.0]);
        for (g, want) in got.iter().zip([0.8, 0.5, 0.35, 0.275]) {
            assert!(close(g.0, want) && g.1 == 0.0, "{got:?}");
        }
    }

    #[test]
    fn tau_gives_beta_and_both_are_refused() {
        let c = NeuronConfig {
            tau: Some(2.0),
            ..Default::default()
        };
        assert!((c.neuron().beta - (-0.5f64).exp()).abs() < 1e-12);
        let both = NeuronConfig {
            beta: Some(0.9),
            ..c
        };
        assert!(both.validate().unwrap_err().contains("beta or tau"));
    }

    #[test]
    fn crossing_the_threshold_fires_and_subtraction_keeps_the_excess() {
        // β = 0.9, θ = 1, input 0.4 per step: H = 0.4, 0.76, 1.084 → spike, V = 0.084;
        // then 0.9·0.084 + 0.4 = 0.4756.
        let n = Neuron {
            beta: 0.9,
            ..neuron()
        };
        let got = run(&n, &[0.4, 0.4, 0.4, 0.4]);
        let want = [(0.4, 0.0), (0.76, 0.0), (1.084, 1.0), (0.4756, 0.0)];
        for (g, w) in got.iter().zip(want) {
            assert!(close(g.0, w.0) && g.1 == w.1 as f32, "{got:?}");
        }
    }

    #[test]
    fn reset_to_rest_forgets_the_excess() {
        // V_rest = −0.5, β = 1, input 0.8: H = 0.3, 1.1 → spike, V = −0.5; then −0.5 + 0.8 = 0.3.
        let n = Neuron {
            beta: 1.0,
            v_rest: -0.5,
            reset: Reset::ToRest,
            ..neuron()
        };
        let got = run(&n, &[0.8, 0.8, 0.8]);
        let want = [(0.3, 0.0), (1.1, 1.0), (0.3, 0.0)];
        for (g, w) in got.iter().zip(want) {
            assert!(close(g.0, w.0) && g.1 == w.1 as f32, "{got:?}");
        }
        // The same with subtraction of θ − V_rest = 1.5: V = −0.4, then −0.4 + 0.8 = 0.4.
        let sub = Neuron {
            reset: Reset::Subtract,
            ..n
        };
        let got = run(&sub, &[0.8, 0.8, 0.8]);
        assert!(close(got[2].0, 0.4), "{got:?}");
    }

    #[test]
    fn a_refractory_neuron_neither_integrates_nor_fires() {
        // Input 1.5 every step, β = 1, reset to rest 0, refractory 2: fires at step 1, holds at 0
        // for steps 2 and 3 (input ignored), fires again at step 4.
        let n = Neuron {
            beta: 1.0,
            reset: Reset::ToRest,
            refractory: 2,
            ..neuron()
        };
        let got = run(&n, &[1.5; 5]);
        let want = [(1.5, 1.0), (0.0, 0.0), (0.0, 0.0), (1.5, 1.0), (0.0, 0.0)];
        for (g, w) in got.iter().zip(want) {
            assert!(close(g.0, w.0) && g.1 == w.1 as f32, "{got:?}");
        }
    }

    #[test]
    fn kernels_respond_to_one_spike_as_their_formulas() {
        // One input spike of weight w = 0.7 at t = 0, threshold out of reach.
        let (w, beta, tau_rise) = (0.7f64, 0.8f64, 2.0f64);
        let alpha = (-1.0 / tau_rise).exp();
        let mut inputs = vec![0.0f32; 6];
        inputs[0] = w as f32;
        for kernel in [Kernel::Exponential, Kernel::DoubleExponential] {
            let n = NeuronConfig {
                beta: Some(beta),
                threshold: 100.0,
                kernel,
                tau_rise,
                ..Default::default()
            }
            .neuron();
            for (s, (v, spike)) in run(&n, &inputs).into_iter().enumerate() {
                let s = s as i32;
                let k = match kernel {
                    Kernel::Exponential => beta.powi(s),
                    Kernel::DoubleExponential => {
                        (1.0 - alpha) * (beta.powi(s + 1) - alpha.powi(s + 1)) / (beta - alpha)
                    }
                };
                assert!(close(v, w * k), "{kernel:?} at s = {s}: {v} vs {}", w * k);
                assert_eq!(spike, 0.0);
            }
        }
    }

    /// dS/dV through `fire` at V − θ = x.
    fn surrogate_at(n: &Neuron, x: f32) -> f32 {
        let device = Device::flex().autodiff();
        let v =
            Tensor::<2>::from_data(TensorData::new(vec![x + 1.0], [1, 1]), &device).require_grad();
        let s = n.fire(v.clone());
        let grads = s.sum().backward();
        v.grad(&grads).unwrap().into_scalar::<f32>()
    }

    #[test]
    fn surrogate_gradients_at_and_away_from_threshold() {
        let pi = std::f64::consts::PI;
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        let cases: [(Surrogate, f64, [(f64, f64); 2]); 3] = [
            // (a/2)/(1 + (π/2·a·x)²), a = 2: 1 at 0; at 0.5: 1/(1 + (π/2)²).
            (
                Surrogate::Arctan,
                2.0,
                [(0.0, 1.0), (0.5, 1.0 / (1.0 + (pi / 2.0).powi(2)))],
            ),
            // 1/(1 + k|x|)², k = 25: 1 at 0; at −0.2: 1/36.
            (
                Surrogate::FastSigmoid,
                25.0,
                [(0.0, 1.0), (-0.2, 1.0 / 36.0)],
            ),
            // k σ(kx)(1 − σ(kx)), k = 4: 1 at 0; at 0.5: 4 σ(2)(1 − σ(2)).
            (
                Surrogate::Sigmoid,
                4.0,
                [(0.0, 1.0), (0.5, 4.0 * sig(2.0) * (1.0 - sig(2.0)))],
            ),
        ];
        for (surrogate, slope, points) in cases {
            let n = NeuronConfig {
                surrogate,
                ..Default::default()
            }
            .neuron();
            assert_eq!(n.slope, slope, "default slope of {surrogate:?}");
            for (x, want) in points {
                let got = surrogate_at(&n, x as f32);
                assert!(
                    (got as f64 - want).abs() < 1e-5,
                    "{surrogate:?} at {x}: {got} vs {want}"
                );
            }
        }
        // A steeper slope narrows the fast sigmoid: k = 5 at 0.2 gives 1/4.
        let n = Neuron {
            surrogate: Surrogate::FastSigmoid,
            slope: 5.0,
            ..neuron()
        };
        assert!((surrogate_at(&n, 0.2) - 0.25).abs() < 1e-6);
        // Forward, the spike is exactly 0 or 1.
        assert_eq!(read(n.fire(row(&[0.999, 1.0, 3.0]))), vec![0.0, 1.0, 1.0]);
    }

    #[test]
    fn shapes_and_early_stop() {
        let device = Device::flex();
        let shape = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        for hidden in [vec![], vec![16]] {
            let cfg = CnnLifConfig {
                hidden: hidden.clone(),
                steps: 5,
                ..Default::default()
            };
            let m = cfg.init(shape, 10, &device).unwrap();
            let x = Tensor::<4>::ones([3, 1, 28, 28], &device);
            let t = m.simulate(x.clone(), |_| false);
            assert_eq!(t.readouts.len(), 5);
            assert_eq!(t.readouts[4].dims(), [3, 10]);
            let mut want = vec![3136];
            want.extend(hidden);
            want.push(10);
            assert_eq!(t.neurons, want);
            assert_eq!(m.forward(x.clone()).dims(), [3, 10]);
            let mut calls = 0;
            let t = m.simulate(x, |_| {
                calls += 1;
                calls == 2
            });
            assert_eq!(t.readouts.len(), 2);
        }
    }

    /// One SGD step on a cross-entropy loss moves the output weights and, through the spikes'
    /// surrogate gradient, the conv front end too, for both codings and with a hidden layer.
    #[test]
    fn one_step_trains_through_the_spikes_into_the_conv_blocks() {
        use crate::models::flat_params;
        use burn::optim::{GradientsParams, SgdConfig};
        let device = Device::flex().autodiff();
        device.seed(1);
        let shape = InputShape {
            channels: 1,
            height: 12,
            width: 12,
        };
        for (coding, hidden) in [
            (Coding::Direct, vec![]),
            (Coding::Poisson, vec![]),
            (Coding::Direct, vec![8]),
        ] {
            let cfg = CnnLifConfig {
                blocks: vec![BlockConfig {
                    channels: 4,
                    ..Default::default()
                }],
                hidden,
                dropout: 0.0,
                steps: 4,
                coding,
                ..Default::default()
            };
            let m = cfg.init(shape, 3, &device).unwrap();
            let x = Tensor::<4>::random([6, 1, 12, 12], Distribution::Uniform(0.0, 2.0), &device);
            let logits = m.forward(x);
            let target = Tensor::<2>::from_data(
                TensorData::new(
                    vec![
                        1.0f32, 0., 0., 0., 1., 0., 0., 0., 1., 1., 0., 0., 0., 1., 0., 0., 0., 1.,
                    ],
                    [6, 3],
                ),
                &device,
            );
            let loss = (burn::tensor::activation::log_softmax(logits, 1) * target)
                .sum()
                .neg();
            let before = (flat_params(&m.convs), flat_params(&m.layers));
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            let m = SgdConfig::new().init().step(0.1, m, grads);
            let after = (flat_params(&m.convs), flat_params(&m.layers));
            for (name, b, a) in [
                ("conv", &before.0, &after.0),
                ("spiking layers", &before.1, &after.1),
            ] {
                let moved = b.iter().zip(a).filter(|(b, a)| b != a).count();
                assert!(
                    moved > b.len() / 4,
                    "{coding:?}: only {moved} of {} {name} weights moved",
                    b.len()
                );
            }
        }
    }
}
