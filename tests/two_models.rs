//! The loop serves a task that is not a classifier, defined here, outside the crate: an
//! autoencoder whose encoder and decoder are two models with two optimizers (two base learning
//! rates on the shared schedule), stepped in two phases like a GAN. Its evaluation metric, the
//! reconstruction error, is better when lower. It trains, picks `best.ckpt` by that metric, and
//! resumes exactly after a crash in mid-epoch.

use std::path::Path;

use anyhow::{Result, anyhow};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use fovea::data::batch::{Batch, Normalizer, eval_batches};
use fovea::data::{DataConfig, ImageSet, Splits};
use fovea::run_files::Curve;
use fovea::train::checkpoint::{self, CheckpointMeta};
use fovea::train::task::part;
use fovea::train::{
    FitContext, FitOptions, Goal, LoopState, Outcome, Part, Report, Run, StepStats, Task, TaskSpec,
    TrainConfig,
};

const LR_ENC: f64 = 0.01;
const LR_DEC: f64 = 0.003;

struct AutoEncoder {
    encoder: Option<Linear>,
    decoder: Option<Linear>,
    opt_enc: ModuleOptimizer,
    opt_dec: ModuleOptimizer,
    device: Device,
    pixels: usize,
}

impl AutoEncoder {
    fn new(pixels: usize) -> Self {
        let device = Device::flex().autodiff();
        device.seed(7);
        AutoEncoder {
            encoder: Some(LinearConfig::new(pixels, 8).init(&device)),
            decoder: Some(LinearConfig::new(8, pixels).init(&device)),
            opt_enc: AdamConfig::new().init(),
            opt_dec: AdamConfig::new().init(),
            device,
            pixels,
        }
    }

    fn images(&self, batch: Batch, device: &Device) -> Tensor<2> {
        let n = batch.len();
        Tensor::from_data(TensorData::new(batch.images, [n, self.pixels]), device)
    }
}

fn mse(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    (a - b).powi_scalar(2).mean()
}

fn to_bytes<M: Module>(m: &M) -> Result<Vec<u8>> {
    Ok(m.clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow!("{e:?}"))?
        .to_vec())
}

fn from_bytes<M: Module>(m: M, bytes: &[u8]) -> Result<M> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| anyhow!("{e:?}"))?;
    m.try_load_record(record).map_err(|e| anyhow!("{e:?}"))
}

impl Task for AutoEncoder {
    fn spec(&self) -> TaskSpec {
        TaskSpec {
            train: vec!["dec_loss", "enc_loss"],
            eval: vec!["mse"],
            select: ("mse", Goal::Min),
            learning_rates: vec![("lr_enc", LR_ENC), ("lr_dec", LR_DEC)],
            curves: vec![Curve {
                file: "loss.png",
                title: "Reconstruction",
                y_label: "mse",
                metrics: vec!["dec_loss", "enc_loss"],
            }],
        }
    }

    fn step(&mut self, batch: Batch, lr_factor: f64, _step: u64) -> Result<StepStats> {
        let count = batch.len();
        let x = self.images(batch, &self.device);
        let (enc, dec) = (self.encoder.take().unwrap(), self.decoder.take().unwrap());
        // (1) the decoder, on the encoder's detached code
        let loss = mse(dec.forward(enc.forward(x.clone()).detach()), x.clone());
        let dec_loss: f64 = loss.clone().into_scalar::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &dec);
        let dec = self.opt_dec.step(LR_DEC * lr_factor, dec, grads);
        // (2) the encoder, through the updated decoder, on a fresh forward pass
        let loss = mse(dec.forward(enc.forward(x.clone())), x);
        let enc_loss: f64 = loss.clone().into_scalar::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &enc);
        let enc = self.opt_enc.step(LR_ENC * lr_factor, enc, grads);
        (self.encoder, self.decoder) = (Some(enc), Some(dec));
        Ok(StepStats {
            count,
            sums: vec![
                ("dec_loss", dec_loss * count as f64),
                ("enc_loss", enc_loss * count as f64),
            ],
        })
    }

    fn evaluate(
        &self,
        set: &ImageSet,
        normalizer: &Normalizer,
        batch_size: usize,
    ) -> Result<Report> {
        let device = self.device.clone().without_autodiff();
        let (enc, dec) = (
            self.encoder.as_ref().unwrap().valid(),
            self.decoder.as_ref().unwrap().valid(),
        );
        let mut sum = 0.0;
        for batch in eval_batches(set, batch_size, normalizer) {
            let n = batch.len() as f64;
            let x = self.images(batch, &device);
            sum += mse(dec.forward(enc.forward(x.clone())), x).into_scalar::<f64>() * n;
        }
        Ok(Report {
            count: set.len(),
            metrics: [("mse".to_string(), sum / set.len() as f64)].into(),
            details: Default::default(),
        })
    }

    fn infer(&self, _batch: Batch) -> Result<()> {
        Ok(())
    }

    fn save(&self) -> Result<Vec<Part>> {
        Ok(vec![
            ("encoder".into(), to_bytes(self.encoder.as_ref().unwrap())?),
            ("decoder".into(), to_bytes(self.decoder.as_ref().unwrap())?),
            (
                "optim_enc".into(),
                self.opt_enc
                    .into_bytes()
                    .map_err(|e| anyhow!("{e:?}"))?
                    .to_vec(),
            ),
            (
                "optim_dec".into(),
                self.opt_dec
                    .into_bytes()
                    .map_err(|e| anyhow!("{e:?}"))?
                    .to_vec(),
            ),
        ])
    }

    fn load(&mut self, parts: Vec<Part>) -> Result<()> {
        // The models first: their parameter ids key the optimizers' state.
        self.encoder = Some(from_bytes(
            self.encoder.take().unwrap(),
            part(&parts, "encoder")?,
        )?);
        self.decoder = Some(from_bytes(
            self.decoder.take().unwrap(),
            part(&parts, "decoder")?,
        )?);
        for (name, opt) in [
            ("optim_enc", &mut self.opt_enc),
            ("optim_dec", &mut self.opt_dec),
        ] {
            let bytes = Bytes::from_bytes_vec(part(&parts, name)?.to_vec());
            *opt = opt
                .clone()
                .from_bytes(bytes)
                .map_err(|e| anyhow!("{e:?}"))?;
        }
        Ok(())
    }

    fn parameter_count(&self) -> usize {
        self.encoder.as_ref().unwrap().num_params() + self.decoder.as_ref().unwrap().num_params()
    }
}

fn data() -> Splits {
    let config = DataConfig {
        train_limit: 192,
        test_limit: 64,
        val_fraction: 0.01,
        ..Default::default()
    };
    fovea::data::load(&config, 3).unwrap()
}

fn train_config() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 32,
        checkpoint_every: 4,
        log_every: 2,
        keep_last: 20,
        ..Default::default()
    }
}

/// Fits `task` in the run folder `dir` from `state`, stopping as a crash would after `crash_at`.
fn fit(dir: &Path, task: &mut AutoEncoder, state: LoopState, crash_at: Option<u64>) -> Outcome {
    let run = Run::open(dir).unwrap();
    let data = data();
    let normalizer = Normalizer::fit(&data.train);
    let train = train_config();
    let options = FitOptions {
        quiet: true,
        crash_at_step: crash_at,
    };
    let ctx = FitContext {
        run: &run,
        train: &train,
        seed: 3,
        augment: &Default::default(),
        data: &data,
        epoch_set: &data.train,
        normalizer: &normalizer,
        kind: "autoencoder",
        options: &options,
        on_epoch_end: &|_| Ok(()),
    };
    fovea::train::fit(&ctx, task, state).unwrap().0
}

/// A logged record without its timing fields: step, split, scope and the values.
type Logged = (u64, String, String, Vec<(String, String)>);

/// The values a run logged, without the timing fields.
fn logged(dir: &Path) -> Vec<Logged> {
    fovea::run_files::read_metrics(dir)
        .unwrap()
        .into_iter()
        .map(|r| {
            let values = r
                .values
                .iter()
                .map(|(k, v)| (k.clone(), format!("{v:?}")))
                .collect();
            (r.step, r.split, r.scope, values)
        })
        .collect()
}

fn last_parts(dir: &Path) -> (CheckpointMeta, Vec<Part>) {
    let (_, meta, parts) = checkpoint::newest_intact::<CheckpointMeta>(&dir.join("checkpoints"))
        .unwrap()
        .unwrap();
    (meta, parts)
}

#[test]
fn a_two_model_task_trains_picks_its_best_by_a_lower_is_better_metric_and_resumes_exactly() {
    let root = tempfile::tempdir().unwrap();
    let pixels = data().train.shape.pixels();
    let straight = Run::create(root.path(), "straight").unwrap().dir;
    let outcome = fit(
        &straight,
        &mut AutoEncoder::new(pixels),
        LoopState::default(),
        None,
    );
    assert_eq!(outcome, Outcome::Completed);

    // Crash at step 10 (mid-epoch 2; the newest checkpoint is step 8, and step 10 was logged
    // after it), then resume.
    let crashed = Run::create(root.path(), "crashed").unwrap().dir;
    let outcome = fit(
        &crashed,
        &mut AutoEncoder::new(pixels),
        LoopState::default(),
        Some(10),
    );
    assert_eq!(outcome, Outcome::Crashed);
    let (meta, parts) = last_parts(&crashed);
    assert_eq!(
        (meta.state.step, meta.state.epoch, meta.state.batch),
        (8, 1, 2)
    );
    let mut task = AutoEncoder::new(pixels);
    task.load(parts).unwrap();
    fovea::train::rewind(&Run::open(&crashed).unwrap(), &meta.state).unwrap();
    let outcome = fit(&crashed, &mut task, meta.state, None);
    assert_eq!(outcome, Outcome::Completed);

    // Identical weights of both models, identical logged values (which the optimizers' state,
    // restored or not, would change).
    let (ma, pa) = last_parts(&straight);
    let (mb, pb) = last_parts(&crashed);
    assert_eq!(ma.state.step, 18);
    let names: Vec<&str> = pa.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["encoder", "decoder", "optim_enc", "optim_dec"]);
    for name in ["encoder", "decoder"] {
        let weights = |parts: &[Part]| {
            let fresh = AutoEncoder::new(pixels);
            let m = if name == "encoder" {
                fresh.encoder
            } else {
                fresh.decoder
            };
            fovea::models::flat_params(&from_bytes(m.unwrap(), part(parts, name).unwrap()).unwrap())
        };
        assert_eq!(weights(&pa), weights(&pb), "{name} differs after resume");
    }
    assert_eq!(ma.state.best, mb.state.best);
    let log = logged(&straight);
    assert_eq!(log, logged(&crashed));

    // Each optimizer's learning rate is its own base on the shared schedule (6 steps an epoch).
    let records = fovea::run_files::read_metrics(&straight).unwrap();
    for r in records.iter().filter(|r| r.scope == "step") {
        let f = fovea::train::schedule::factor(&train_config(), r.step - 1, 6);
        assert_eq!(r.get("lr_enc"), Some(LR_ENC * f), "{r:?}");
        assert_eq!(r.get("lr_dec"), Some(LR_DEC * f), "{r:?}");
    }
    assert!(records.iter().any(|r| r.get("enc_loss").is_some()));

    // best.ckpt holds the epoch with the lowest validation error.
    let val: Vec<(u64, f64)> = records
        .iter()
        .filter(|r| r.split == "val")
        .map(|r| (r.step, r.get("mse").unwrap()))
        .collect();
    assert_eq!(val.len(), 3);
    let lowest = val.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    let highest = val.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert_ne!(
        lowest.0, highest.0,
        "the validation error did not change: {val:?}"
    );
    let (best, _): (CheckpointMeta, _) =
        checkpoint::read(&straight.join("checkpoints/best.ckpt")).unwrap();
    assert_eq!(best.state.step, lowest.0, "{val:?}");
    assert_eq!(ma.state.best, Some(lowest.1));
    assert_eq!(ma.state.best_step, Some(lowest.0));
}
