//! The classifier task: mini-batch gradient descent on softmax cross-entropy, and its evaluation
//! (loss, accuracy, per-class accuracy, the confusion matrix).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde_json::{Map, Value, json};

use crate::data::batch::{Batch, Normalizer, eval_batches, mix};
use crate::data::{ImageSet, InputShape};
use crate::models::Model;
use crate::models::cnn_lif::CnnLif;
use crate::report::plots;
use crate::run_files::Curve;
use crate::tasks::records::{load_module, load_optim, module_part, optim_part};
use crate::train::task::{Goal, Part, Report, StepStats, Task, TaskSpec};

/// Mean softmax cross-entropy of `logits` `[b, k]` against class indices `[b]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = logits.dims();
    let logp = log_softmax(logits, 1); // [b, k]
    logp.gather(1, targets.reshape([b, 1])).mean().neg() // [1]
}

/// The loss a classifier logs and evaluates: softmax cross-entropy, or an SVM's hinge loss.
pub fn data_loss(model: &Model, logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    match model {
        Model::Svm(m) => m.data_loss(logits, targets),
        Model::KernelSvm(_) => crate::models::svm::hinge(
            logits,
            targets,
            crate::models::svm::SvmLoss::Hinge,
            crate::models::svm::Multiclass::Ovr,
        ),
        _ => cross_entropy(logits, targets),
    }
}

/// Images of a batch as a tensor `[b, c, h, w]` and labels `[b]` on `device`.
pub fn to_tensors(batch: Batch, shape: InputShape, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let b = batch.len();
    let x = image_tensor(batch.images, shape, device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(batch.labels, [b]), device);
    (x, y)
}

/// Normalized images of `shape`, one after another, as a tensor `[n, c, h, w]` on `device`.
pub fn image_tensor(images: Vec<f32>, shape: InputShape, device: &Device) -> Tensor<4> {
    let n = images.len() / shape.pixels();
    Tensor::<4>::from_data(
        TensorData::new(images, [n, shape.channels, shape.height, shape.width]),
        device,
    )
}

/// A float tensor's values on the host, in order; `what` names them in the error.
pub fn host_f32<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow!("cannot read {what}: {e:?}"))
}

/// The evaluation metrics a spiking model adds, after loss and accuracy.
pub const SPIKING_METRICS: [&str; 4] = [
    "decision_step",
    "v4_rate",
    "output_rate",
    "spikes_per_image",
];

/// A classifier being trained: the model, its optimizer and learning rate, and the (autodiff)
/// device.
pub struct Classifier {
    model: Option<Model>,
    optim: ModuleOptimizer,
    lr: f64,
    device: Device,
    shape: InputShape,
    classes: Vec<String>,
    seed: u64,
}

impl Classifier {
    pub fn new(
        model: Model,
        optim: ModuleOptimizer,
        lr: f64,
        device: Device,
        shape: InputShape,
        classes: Vec<String>,
        seed: u64,
    ) -> Self {
        Self {
            model: Some(model),
            optim,
            lr,
            device,
            shape,
            classes,
            seed,
        }
    }

    pub fn model(&self) -> &Model {
        self.model.as_ref().expect("model is present between steps")
    }

    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// One optimizer step on the loss `f` computes from the model (in training mode, on the
    /// autodiff device), at the base learning rate × `lr_factor`; returns what `f` returns
    /// beside the loss.
    pub fn update<T>(&mut self, lr_factor: f64, f: impl FnOnce(&Model) -> (Tensor<1>, T)) -> T {
        let model = self.model.take().expect("model is present between steps");
        let (loss, out) = f(&model);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(self.lr * lr_factor, model, grads));
        out
    }
}

impl Task for Classifier {
    fn spec(&self) -> TaskSpec {
        let spiking = matches!(self.model(), Model::CnnLif(_));
        let mut eval = vec!["loss", "accuracy"];
        let mut curves = vec![
            Curve {
                file: "loss.png",
                title: if matches!(self.model(), Model::Svm(_) | Model::KernelSvm(_)) {
                    "Loss (multi-class hinge)"
                } else {
                    "Loss (softmax cross-entropy)"
                },
                y_label: "loss",
                metrics: vec!["loss"],
            },
            Curve {
                file: "accuracy.png",
                title: "Accuracy",
                y_label: "accuracy",
                metrics: vec!["accuracy"],
            },
        ];
        if spiking {
            eval.extend(SPIKING_METRICS);
            curves.push(Curve {
                file: "firing.png",
                title: "Firing rate (spikes per neuron per time step, validation)",
                y_label: "rate",
                metrics: vec!["v4_rate", "output_rate"],
            });
        }
        TaskSpec {
            train: vec!["loss", "accuracy"],
            eval,
            select: ("accuracy", Goal::Max),
            learning_rates: vec![("lr", self.lr)],
            curves,
        }
    }

    fn step(&mut self, batch: Batch, lr_factor: f64, step: u64) -> Result<StepStats> {
        // Dropout draws from the device RNG: seeding it per step makes a resumed run draw the
        // same masks as an uninterrupted one.
        self.device.seed(mix(&[self.seed, step, 3]));
        let count = batch.len();
        let (x, y) = to_tensors(batch, self.shape, &self.device);
        let (loss_value, correct) = self.update(lr_factor, |model| {
            let logits = model.forward(x); // [b, classes]
            let correct = correct_count(logits.clone(), y.clone());
            let loss = data_loss(model, logits, y);
            let loss_value: f64 = loss.clone().into_scalar::<f64>();
            // An SVM minimizes its hinge loss plus the L2 term; the log shows the hinge loss alone.
            let objective = match model {
                Model::Svm(m) => loss + m.penalty(),
                _ => loss,
            };
            (objective, (loss_value, correct))
        });
        Ok(StepStats {
            count,
            sums: vec![
                ("loss", loss_value * count as f64),
                ("accuracy", correct as f64),
            ],
        })
    }

    fn evaluate(
        &self,
        set: &ImageSet,
        normalizer: &Normalizer,
        batch_size: usize,
    ) -> Result<Report> {
        let e = evaluate(
            &self.model().valid(),
            set,
            normalizer,
            batch_size,
            self.classes.len(),
            self.seed,
            &self.device.clone().without_autodiff(),
        )?;
        Ok(e.report(&self.classes))
    }

    fn infer(&self, batch: Batch) -> Result<()> {
        let device = self.device.clone().without_autodiff();
        let (x, _) = to_tensors(batch, self.shape, &device);
        let logits = self.model().valid().forward(x);
        // Reading one value waits for the whole forward pass, on every backend.
        let _: f32 = logits.sum().into_scalar::<f32>();
        Ok(())
    }

    fn save(&self) -> Result<Vec<Part>> {
        Ok(vec![
            module_part("model", self.model())?,
            optim_part("optim", &self.optim)?,
        ])
    }

    fn load(&mut self, parts: Vec<Part>) -> Result<()> {
        // The model first: loading restores its parameter ids, which key the optimizer state.
        let model = load_model(self.model.take().expect("model present"), &parts)?;
        self.model = Some(model);
        self.optim = load_optim(&self.optim, &parts, "optim")?;
        Ok(())
    }

    fn parameter_count(&self) -> usize {
        self.model().num_params()
    }

    fn write_figures(&self, test: &Report, run_dir: &Path) -> Result<()> {
        let confusion: Vec<Vec<usize>> = serde_json::from_value(
            test.details
                .get("confusion_matrix")
                .cloned()
                .context("the test report has no confusion matrix")?,
        )?;
        let accuracy = test.metrics.get("accuracy").copied().unwrap_or(f64::NAN);
        if let Some(early) = test.details.get("early_decision") {
            let series = |key: &str| -> Result<Vec<f64>> {
                serde_json::from_value(early[key].clone())
                    .with_context(|| format!("early_decision.{key} in the test report"))
            };
            plots::early_decision(
                &run_dir.join(plots::EARLY_DECISION),
                &series("accuracy")?,
                &series("final_fraction")?,
                test.count,
            )?;
        }
        plots::confusion(
            &run_dir.join(plots::CONFUSION),
            &confusion,
            &self.classes,
            &format!(
                "Test confusion matrix — accuracy {accuracy:.4} ({} images)",
                test.count
            ),
        )
    }
}

/// Applies the `model` part of a checkpoint to a freshly built model of the same config.
pub fn load_model(model: Model, parts: &[Part]) -> Result<Model> {
    load_module(model, parts, "model")
}

/// The predictions of `logits` `[b, k]` that match `y` `[b]`.
pub fn correct_count(logits: Tensor<2>, y: Tensor<1, Int>) -> usize {
    let pred = logits.argmax(1).flatten::<1>(0, 1); // [b]
    pred.equal(y).int().sum().into_scalar::<i64>() as usize
}

/// Loss, accuracy and the confusion matrix of a classifier on a set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub count: usize,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// Early decisions and firing, for a spiking model.
    pub spiking: Option<SpikingEval>,
}

/// A spiking model's evaluation over its time steps.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikingEval {
    /// Images classified correctly from the readout after steps 1..=t, for each t.
    pub correct_per_step: Vec<usize>,
    /// Images whose prediction no longer changes from step t on, for each t.
    pub final_by_step: Vec<usize>,
    /// Sum over images of the step from which the prediction is final.
    pub decision_step_sum: usize,
    /// Spikes of each layer (V4, hidden…, output) over all images and steps.
    pub spikes: Vec<f64>,
    /// Neurons of each layer.
    pub neurons: Vec<usize>,
}

impl SpikingEval {
    fn new(steps: usize, neurons: Vec<usize>) -> Self {
        Self {
            correct_per_step: vec![0; steps],
            final_by_step: vec![0; steps],
            decision_step_sum: 0,
            spikes: vec![0.0; neurons.len()],
            neurons,
        }
    }

    /// Adds one batch: `pred[t][i]`, the prediction for image i after step t+1.
    fn add(&mut self, pred: &[Vec<i64>], labels: &[i64], spikes: &[f64]) {
        let steps = pred.len();
        for (i, &label) in labels.iter().enumerate() {
            let last = pred[steps - 1][i];
            let mut from = steps; // 1-based step from which the prediction stays `last`
            while from > 1 && pred[from - 2][i] == last {
                from -= 1;
            }
            self.decision_step_sum += from;
            for t in 0..steps {
                self.correct_per_step[t] += (pred[t][i] == label) as usize;
                self.final_by_step[t] += (t + 1 >= from) as usize;
            }
        }
        for (total, s) in self.spikes.iter_mut().zip(spikes) {
            *total += s;
        }
    }

    /// Metrics (`decision_step`, `v4_rate`, `output_rate`, `spikes_per_image`) and details
    /// (`early_decision`, `firing`) for `count` images.
    fn report(
        &self,
        count: usize,
        metrics: &mut BTreeMap<String, f64>,
        details: &mut Map<String, Value>,
    ) {
        let n = count.max(1) as f64;
        let steps = self.correct_per_step.len();
        let rate = |l: usize| self.spikes[l] / (n * self.neurons[l] as f64 * steps as f64);
        let last = self.neurons.len() - 1;
        metrics.insert("decision_step".into(), self.decision_step_sum as f64 / n);
        metrics.insert("v4_rate".into(), rate(0));
        metrics.insert("output_rate".into(), rate(last));
        metrics.insert(
            "spikes_per_image".into(),
            self.spikes.iter().sum::<f64>() / n,
        );
        let frac = |v: &[usize]| v.iter().map(|&c| c as f64 / n).collect::<Vec<_>>();
        details.insert(
            "early_decision".into(),
            json!({
                "steps": (1..=steps).collect::<Vec<_>>(),
                "accuracy": frac(&self.correct_per_step),
                "final_fraction": frac(&self.final_by_step),
                "mean_decision_step": self.decision_step_sum as f64 / n,
            }),
        );
        let layers: Vec<Value> = (0..self.neurons.len())
            .map(|l| {
                let name = if l == 0 {
                    "v4".to_string()
                } else if l == last {
                    "output".to_string()
                } else {
                    format!("hidden{l}")
                };
                json!({
                    "layer": name,
                    "neurons": self.neurons[l],
                    "rate": rate(l),
                    "spikes_per_image": self.spikes[l] / n,
                })
            })
            .collect();
        details.insert("firing".into(), Value::Array(layers));
    }
}

impl Evaluation {
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let n: usize = row.iter().sum();
                if n == 0 {
                    0.0
                } else {
                    row[i] as f64 / n as f64
                }
            })
            .collect()
    }

    /// As a task report: `loss` and `accuracy`, with per-class accuracy, the class names and the
    /// confusion matrix as details for `summary.json`.
    pub fn report(&self, classes: &[String]) -> Report {
        let per_class: serde_json::Map<String, serde_json::Value> = classes
            .iter()
            .cloned()
            .zip(
                self.per_class_accuracy()
                    .into_iter()
                    .map(serde_json::Value::from),
            )
            .collect();
        let mut details = Map::new();
        details.insert("per_class_accuracy".into(), per_class.into());
        details.insert("classes".into(), classes.into());
        details.insert("confusion_matrix".into(), json!(self.confusion));
        let mut metrics: BTreeMap<String, f64> = [
            ("loss".to_string(), self.loss),
            ("accuracy".to_string(), self.accuracy),
        ]
        .into();
        if let Some(s) = &self.spiking {
            s.report(self.count, &mut metrics, &mut details);
        }
        Report {
            count: self.count,
            metrics,
            details,
        }
    }
}

/// Loss, accuracy and confusion matrix of `model` (in eval mode) on `set`.
pub fn evaluate(
    model: &Model,
    set: &ImageSet,
    normalizer: &Normalizer,
    batch_size: usize,
    classes: usize,
    seed: u64,
    device: &Device,
) -> Result<Evaluation> {
    let mut confusion = vec![vec![0usize; classes]; classes];
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let mut spiking = None;
    // Poisson spike coding draws from the device RNG: the same seed, the same evaluation.
    device.seed(mix(&[seed, 5]));
    for batch in eval_batches(set, batch_size, normalizer) {
        let n = batch.len();
        let labels = batch.labels.clone();
        let (x, y) = to_tensors(batch, set.shape, device);
        let logits = match model {
            Model::CnnLif(m) => {
                let trace = m.simulate(x, |_| false);
                let pred = trace
                    .readouts
                    .iter()
                    .map(|r| argmax(r.clone()))
                    .collect::<Result<Vec<_>>>()?;
                let spikes = trace
                    .spikes
                    .iter()
                    .map(|s| s.clone().into_scalar::<f64>())
                    .collect::<Vec<_>>();
                spiking
                    .get_or_insert_with(|| SpikingEval::new(m.steps(), trace.neurons.clone()))
                    .add(&pred, &labels, &spikes);
                trace.logits()
            }
            _ => model.forward(x),
        };
        let loss: f64 = data_loss(model, logits.clone(), y).into_scalar::<f64>();
        loss_sum += loss * n as f64;
        let pred = argmax(logits)?;
        for (t, p) in labels.iter().zip(pred) {
            confusion[*t as usize][p as usize] += 1;
            correct += (*t == p) as usize;
        }
    }
    let count = set.len();
    let denom = count.max(1) as f64;
    Ok(Evaluation {
        loss: loss_sum / denom,
        accuracy: correct as f64 / denom,
        count,
        confusion,
        spiking,
    })
}

/// The index of the largest logit of each row of `[b, k]`.
pub fn argmax(logits: Tensor<2>) -> Result<Vec<i64>> {
    logits
        .argmax(1)
        .flatten::<1>(0, 1)
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| anyhow!("cannot read predictions: {e:?}"))
}

/// Softmax probabilities of `model` for already-normalized images.
pub fn probabilities(
    model: &Model,
    images: Vec<f32>,
    shape: InputShape,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let x = image_tensor(images, shape, device);
    rows(burn::tensor::activation::softmax(model.forward(x), 1)) // [n, classes]
}

/// Softmax probabilities of a spiking model that stops early: each image's prediction is read
/// after the first step at which its top two probabilities differ by `margin` or more (after the
/// last step for those that never do), and the simulation stops once every image in the batch
/// has decided. Returns, per image, the probabilities and that step (1-based).
pub fn probabilities_early_exit(
    model: &CnnLif,
    images: Vec<f32>,
    shape: InputShape,
    margin: f64,
    device: &Device,
) -> Result<Vec<(Vec<f32>, usize)>> {
    let x = image_tensor(images, shape, device);
    let n = x.dims()[0];
    let mut decided: Vec<Option<(Vec<f32>, usize)>> = vec![None; n];
    let mut failure = None;
    let mut step = 0;
    let trace = model.simulate(x, |readout| {
        step += 1;
        match rows(burn::tensor::activation::softmax(readout.clone(), 1)) {
            Ok(probs) => {
                for (d, p) in decided.iter_mut().zip(probs) {
                    if d.is_none() && top_margin(&p) >= margin {
                        *d = Some((p, step));
                    }
                }
            }
            Err(e) => failure = Some(e),
        }
        failure.is_some() || decided.iter().all(Option::is_some)
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let last = rows(burn::tensor::activation::softmax(trace.logits(), 1))?;
    Ok(decided
        .into_iter()
        .zip(last)
        .map(|(d, p)| d.unwrap_or((p, step)))
        .collect())
}

/// The top probability minus the runner-up's.
fn top_margin(p: &[f32]) -> f64 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in p {
        if v > a {
            (a, b) = (v, a);
        } else if v > b {
            b = v;
        }
    }
    if b.is_finite() {
        (a - b) as f64
    } else {
        a as f64
    }
}

/// The rows of `[n, k]` on the host.
fn rows(t: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [_, k] = t.dims();
    let flat = host_f32(t, "probabilities")?;
    Ok(flat.chunks(k).map(|c| c.to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_decisions_are_counted_per_step() {
        // Image 0 (label 1) is predicted 0, 1, 1: correct from step 2, final from step 2.
        // Image 1 (label 0) is predicted 1, 1, 1: never correct, final from step 1.
        let mut s = SpikingEval::new(3, vec![4, 2]);
        s.add(&[vec![0, 1], vec![1, 1], vec![1, 1]], &[1, 0], &[6.0, 2.0]);
        assert_eq!(s.correct_per_step, vec![0, 1, 1]);
        assert_eq!(s.final_by_step, vec![1, 2, 2]);
        assert_eq!(s.decision_step_sum, 3);
        let (mut metrics, mut details) = (BTreeMap::new(), Map::new());
        s.report(2, &mut metrics, &mut details);
        assert_eq!(metrics["decision_step"], 1.5);
        // 6 spikes over 2 images × 4 neurons × 3 steps; 2 over 2 × 2 × 3.
        assert_eq!(metrics["v4_rate"], 0.25);
        assert_eq!(metrics["output_rate"], 2.0 / 12.0);
        assert_eq!(metrics["spikes_per_image"], 4.0);
        assert_eq!(
            details["early_decision"]["accuracy"],
            json!([0.0, 0.5, 0.5])
        );
    }

    #[test]
    fn the_margin_is_the_lead_over_the_runner_up() {
        assert!((top_margin(&[0.1, 0.6, 0.3]) - 0.3).abs() < 1e-6);
        assert_eq!(top_margin(&[0.5, 0.5]), 0.0);
    }
}
