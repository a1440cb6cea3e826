//! The classifier task: mini-batch gradient descent on softmax cross-entropy, and its evaluation
//! (loss, accuracy, per-class accuracy, the confusion matrix).

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use burn::tensor::activation::log_softmax;

use crate::data::batch::{Batch, Normalizer, eval_batches, mix};
use crate::data::{ImageSet, InputShape};
use crate::models::Model;
use crate::report::plots;
use crate::train::task::{Curve, Goal, Part, Report, StepStats, Task, TaskSpec, part};

/// Mean softmax cross-entropy of `logits` `[b, k]` against class indices `[b]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = logits.dims();
    let logp = log_softmax(logits, 1); // [b, k]
    logp.gather(1, targets.reshape([b, 1])).mean().neg() // [1]
}

/// Images of a batch as a tensor `[b, c, h, w]` and labels `[b]` on `device`.
pub fn to_tensors(batch: Batch, shape: InputShape, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let b = batch.len();
    let x = Tensor::<4>::from_data(
        TensorData::new(batch.images, [b, shape.channels, shape.height, shape.width]),
        device,
    );
    let y = Tensor::<1, Int>::from_data(TensorData::new(batch.labels, [b]), device);
    (x, y)
}

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
}

impl Task for Classifier {
    fn spec(&self) -> TaskSpec {
        TaskSpec {
            train: vec!["loss", "accuracy"],
            eval: vec!["loss", "accuracy"],
            select: ("accuracy", Goal::Max),
            learning_rates: vec![("lr", self.lr)],
            curves: vec![
                Curve {
                    file: "loss.png",
                    title: "Loss (softmax cross-entropy)",
                    y_label: "loss",
                    metrics: vec!["loss"],
                },
                Curve {
                    file: "accuracy.png",
                    title: "Accuracy",
                    y_label: "accuracy",
                    metrics: vec!["accuracy"],
                },
            ],
        }
    }

    fn step(&mut self, batch: Batch, lr_factor: f64, step: u64) -> Result<StepStats> {
        // Dropout draws from the device RNG: seeding it per step makes a resumed run draw the
        // same masks as an uninterrupted one.
        self.device.seed(mix(&[self.seed, step, 3]));
        let count = batch.len();
        let (x, y) = to_tensors(batch, self.shape, &self.device);
        let model = self.model.take().expect("model is present between steps");
        let logits = model.forward(x); // [b, classes]
        let correct = correct_count(logits.clone(), y.clone());
        let loss = cross_entropy(logits, y);
        let loss_value: f64 = loss.clone().into_scalar::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(self.lr * lr_factor, model, grads));
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
        // `valid()` first: it folds BatchNorm's pending running-statistics update into the
        // stored value, which a plain `into_record()` would read one step stale.
        let model = self
            .model()
            .valid()
            .into_record()
            .into_bytes()
            .map_err(|e| anyhow!("cannot serialize the model: {e:?}"))?;
        let optim = self
            .optim
            .into_bytes()
            .map_err(|e| anyhow!("cannot serialize the optimizer: {e:?}"))?;
        Ok(vec![
            ("model".into(), model.to_vec()),
            ("optim".into(), optim.to_vec()),
        ])
    }

    fn load(&mut self, parts: Vec<Part>) -> Result<()> {
        // The model first: loading restores its parameter ids, which key the optimizer state.
        let model = load_model(self.model.take().expect("model present"), &parts)?;
        self.model = Some(model);
        let optim = part(&parts, "optim")?;
        self.optim = self
            .optim
            .clone()
            .from_bytes(Bytes::from_bytes_vec(optim.to_vec()))
            .map_err(|e| anyhow!("cannot load the optimizer state: {e:?}"))?;
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
    let bytes = part(parts, "model")?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| anyhow!("cannot read the model record: {e:?}"))?;
    model
        .try_load_record(record)
        .map_err(|e| anyhow!("the checkpoint's model does not match the configured model: {e:?}"))
}

fn correct_count(logits: Tensor<2>, y: Tensor<1, Int>) -> usize {
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
        let mut details = serde_json::Map::new();
        details.insert("per_class_accuracy".into(), per_class.into());
        details.insert("classes".into(), classes.into());
        details.insert("confusion_matrix".into(), serde_json::json!(self.confusion));
        Report {
            count: self.count,
            metrics: [
                ("loss".to_string(), self.loss),
                ("accuracy".to_string(), self.accuracy),
            ]
            .into(),
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
    device: &Device,
) -> Result<Evaluation> {
    let mut confusion = vec![vec![0usize; classes]; classes];
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for batch in eval_batches(set, batch_size, normalizer) {
        let n = batch.len();
        let labels = batch.labels.clone();
        let (x, y) = to_tensors(batch, set.shape, device);
        let logits = model.forward(x);
        let loss: f64 = cross_entropy(logits.clone(), y).into_scalar::<f64>();
        loss_sum += loss * n as f64;
        let pred: Vec<i64> = logits
            .argmax(1)
            .flatten::<1>(0, 1)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .map_err(|e| anyhow!("cannot read predictions: {e:?}"))?;
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
    })
}

/// Softmax probabilities of `model` for already-normalized images.
pub fn probabilities(
    model: &Model,
    images: Vec<f32>,
    shape: InputShape,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let n = images.len() / shape.pixels();
    let x = Tensor::<4>::from_data(
        TensorData::new(images, [n, shape.channels, shape.height, shape.width]),
        device,
    );
    let probs = burn::tensor::activation::softmax(model.forward(x), 1); // [n, classes]
    let [_, k] = probs.dims();
    let flat: Vec<f32> = probs
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow!("cannot read probabilities: {e:?}"))?;
    Ok(flat.chunks(k).map(|c| c.to_vec()).collect())
}
