//! The model variants, a closed set chosen by `[model] kind = ...` in the config.
//!
//! Each variant's file holds its config (plain serde, with defaults), `init` and `forward`.
//! Models know nothing of files or training.

pub mod cnn;
pub mod cnn_lif;
pub mod cnn_rnn;
pub mod gan;
pub mod kernel_svm;
mod layers;
pub mod macs;
pub mod restore;
pub mod rnn;
pub mod size;
pub mod ssgan;
pub mod svm;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::InputShape;

/// `[model]` section of a config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelConfig {
    Cnn(cnn::CnnConfig),
    Rnn(rnn::RnnConfig),
    CnnRnn(cnn_rnn::CnnRnnConfig),
    CnnLif(cnn_lif::CnnLifConfig),
    Gan(gan::GanConfig),
    Ssgan(ssgan::SsganConfig),
    Restore(restore::RestoreConfig),
    Svm(svm::SvmConfig),
    KernelSvm(kernel_svm::KernelSvmConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Cnn(cnn::CnnConfig::default())
    }
}

impl ModelConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Cnn(_) => "cnn",
            ModelConfig::Rnn(_) => "rnn",
            ModelConfig::CnnRnn(_) => "cnn-rnn",
            ModelConfig::CnnLif(_) => "cnn-lif",
            ModelConfig::Gan(_) => "gan",
            ModelConfig::Ssgan(_) => "ssgan",
            ModelConfig::Restore(_) => "restore",
            ModelConfig::Svm(_) => "svm",
            ModelConfig::KernelSvm(_) => "kernel-svm",
        }
    }

    /// Whether the run learns from the training images without their labels too
    /// (`data.labels_per_class` leaves the others unlabelled): its epochs pass over every
    /// training image.
    pub fn is_semi_supervised(&self) -> bool {
        matches!(self, ModelConfig::Ssgan(_))
    }

    /// Whether the run is a classifier (every kind but `gan` and `restore`; an `ssgan` run's
    /// discriminator is one).
    pub fn is_classifier(&self) -> bool {
        !matches!(self, ModelConfig::Gan(_) | ModelConfig::Restore(_))
    }

    /// Range checks; the error starts with the key inside `[model]`.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ModelConfig::Cnn(c) => c.validate(),
            ModelConfig::Rnn(c) => c.validate(),
            ModelConfig::CnnRnn(c) => c.validate(),
            ModelConfig::CnnLif(c) => c.validate(),
            ModelConfig::Gan(c) => c.validate(),
            ModelConfig::Ssgan(c) => c.validate(),
            ModelConfig::Restore(c) => c.validate(),
            ModelConfig::Svm(c) => c.validate(),
            ModelConfig::KernelSvm(c) => c.validate(),
        }
    }

    /// Builds the classifier for images of `input` shape and `classes` outputs (every kind but
    /// `gan` and `restore`, whose tasks build their two networks themselves; an `ssgan` run's
    /// discriminator, without its generator).
    pub fn init(
        &self,
        input: InputShape,
        classes: usize,
        device: &Device,
    ) -> anyhow::Result<Model> {
        Ok(match self {
            ModelConfig::Cnn(c) => Model::Cnn(c.init(input, classes, device)?),
            ModelConfig::Ssgan(c) => Model::Cnn(c.classifier(input, classes, device)?),
            ModelConfig::Rnn(c) => Model::Rnn(c.init(input, classes, device)?),
            ModelConfig::CnnRnn(c) => Model::CnnRnn(c.init(input, classes, device)?),
            ModelConfig::CnnLif(c) => Model::CnnLif(c.init(input, classes, device)?),
            ModelConfig::Svm(c) => Model::Svm(c.init(input, classes, device)?),
            ModelConfig::KernelSvm(c) => Model::KernelSvm(c.init(input, classes, device)),
            ModelConfig::Gan(_) | ModelConfig::Restore(_) => anyhow::bail!(
                "a {} run has no classifier: predict and serve read classifier runs (cnn, rnn, cnn-rnn, cnn-lif, svm, kernel-svm, ssgan)",
                self.kind()
            ),
        })
    }
}

/// A classifier: images `[batch, channels, height, width]` → logits `[batch, classes]`.
#[derive(Module, Debug)]
pub enum Model {
    Cnn(cnn::Cnn),
    Rnn(rnn::Rnn),
    CnnRnn(cnn_rnn::CnnRnn),
    CnnLif(cnn_lif::CnnLif),
    Svm(svm::Svm),
    KernelSvm(kernel_svm::KernelSvm),
}

impl Model {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Model::Cnn(m) => m.forward(images),
            Model::Rnn(m) => m.forward(images),
            Model::CnnRnn(m) => m.forward(images),
            Model::CnnLif(m) => m.forward(images),
            Model::Svm(m) => m.forward(images),
            Model::KernelSvm(m) => m.forward(images),
        }
    }

    /// The features of the layer before the output, `[b, d]`, with the logits `[b, classes]`:
    /// what a judge of generated images reads (cnn models only).
    pub fn penultimate(&self, images: Tensor<4>) -> Option<(Tensor<2>, Tensor<2>)> {
        match self {
            Model::Cnn(m) => Some(m.penultimate(images)),
            _ => None,
        }
    }
}

/// Every float parameter of a module in visiting order, each flattened, with whether it is
/// trained (takes gradients: batch norm's running statistics do not).
pub fn params<M: Module>(module: &M) -> Vec<(Tensor<1>, bool)> {
    struct Collect(Vec<(Tensor<1>, bool)>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let t = param.val();
            let trained = t.is_require_grad();
            self.0.push((t.flatten::<1>(0, D - 1), trained));
        }
    }
    let mut c = Collect(Vec::new());
    module.visit(&mut c);
    c.0
}

/// The values of a module's float parameters (`params`), in visiting order, the trained ones
/// alone when `trained_only`: for comparing weights.
pub fn param_values<M: Module>(module: &M, trained_only: bool) -> Vec<f32> {
    params(module)
        .into_iter()
        .filter(|(_, trained)| *trained || !trained_only)
        .flat_map(|(t, _)| {
            let data = t.into_data().convert::<f32>();
            data.try_into_vec::<f32>().expect("f32 data")
        })
        .collect()
}

/// Every float parameter's values, in visiting order (for comparing weights).
pub fn flat_params<M: Module>(module: &M) -> Vec<f32> {
    param_values(module, false)
}
