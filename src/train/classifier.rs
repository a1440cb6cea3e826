//! The classifier step: mini-batch gradient descent on softmax cross-entropy, and its evaluation.

use anyhow::{Context, Result, anyhow};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use burn::tensor::activation::log_softmax;

use super::checkpoint::Part;
use super::metrics::Evaluation;
use super::{StepStats, Task};
use crate::data::batch::{Batch, Normalizer, eval_batches, mix};
use crate::data::{ImageSet, InputShape};
use crate::models::Model;

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

/// A classifier being trained: the model, its optimizer, and the (autodiff) device.
pub struct Classifier {
    model: Option<Model>,
    optim: ModuleOptimizer,
    device: Device,
    shape: InputShape,
    classes: usize,
    seed: u64,
}

impl Classifier {
    pub fn new(
        model: Model,
        optim: ModuleOptimizer,
        device: Device,
        shape: InputShape,
        classes: usize,
        seed: u64,
    ) -> Self {
        Self {
            model: Some(model),
            optim,
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
    fn step(&mut self, batch: Batch, lr: f64, step: u64) -> Result<StepStats> {
        // Dropout draws from the device RNG: seeding it per step makes a resumed run draw the
        // same masks as an uninterrupted one.
        self.device.seed(mix(&[self.seed, step, 3]));
        let count = batch.len();
        let (x, y) = to_tensors(batch, self.shape, &self.device);
        let model = self.model.take().expect("model is present between steps");
        let logits = model.forward(x); // [b, classes]
        let correct = correct_count(logits.clone(), y.clone())?;
        let loss = cross_entropy(logits, y);
        let loss_value: f64 = loss.clone().into_scalar::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(lr, model, grads));
        Ok(StepStats {
            loss: loss_value,
            correct,
            count,
        })
    }

    fn evaluate(
        &self,
        set: &ImageSet,
        normalizer: &Normalizer,
        batch_size: usize,
    ) -> Result<Evaluation> {
        evaluate(
            &self.model().valid(),
            set,
            normalizer,
            batch_size,
            self.classes,
            &self.device.clone().without_autodiff(),
        )
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
}

fn part<'a>(parts: &'a [Part], name: &str) -> Result<&'a [u8]> {
    parts
        .iter()
        .find(|p| p.0 == name)
        .map(|p| p.1.as_slice())
        .with_context(|| format!("checkpoint has no `{name}` part"))
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

fn correct_count(logits: Tensor<2>, y: Tensor<1, Int>) -> Result<usize> {
    let pred = logits.argmax(1).flatten::<1>(0, 1); // [b]
    let correct: i64 = pred.equal(y).int().sum().into_scalar::<i64>();
    Ok(correct as usize)
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
