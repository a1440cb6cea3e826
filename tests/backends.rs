//! Backend parity: the same weights and batch give the same logits on flex, ndarray and (where an
//! adapter exists) wgpu. The wgpu training path runs where an adapter exists.

mod common;

use burn::module::Module;
use fovea::data::InputShape;
use fovea::device::{self, BackendKind};
use fovea::train::checkpoint::Part;

fn logits_on(kind: BackendKind, parts: &[Part], input: &[f32], shape: InputShape) -> Vec<f32> {
    let device = device::open(kind).unwrap();
    let config = fovea::models::ModelConfig::default();
    let model = config.init(shape, 10, &device).unwrap();
    let model = fovea::train::classifier::load_model(model, parts)
        .unwrap()
        .valid();
    let x = burn::tensor::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(input.to_vec(), [4, 1, 28, 28]),
        &device,
    );
    model
        .forward(x)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn wgpu_available() -> bool {
    match device::open(BackendKind::Wgpu) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED wgpu checks: {e:#}");
            false
        }
    }
}

#[test]
fn same_weights_same_logits_on_every_backend() {
    let shape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    let flex = burn::tensor::Device::flex();
    flex.seed(3);
    let model = fovea::models::ModelConfig::default()
        .init(shape, 10, &flex)
        .unwrap();
    let bytes = model.into_record().into_bytes().unwrap().to_vec();
    let parts = vec![("model".to_string(), bytes)];
    let input: Vec<f32> = (0..4 * 784)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();

    let reference = logits_on(BackendKind::Flex, &parts, &input, shape);
    let mut others = vec![BackendKind::Ndarray];
    if wgpu_available() {
        others.push(BackendKind::Wgpu);
    }
    for kind in others {
        let got = logits_on(kind, &parts, &input, shape);
        let worst = reference
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "{kind}: logits differ from flex by {worst}");
        eprintln!("{kind}: max |logit difference| vs flex = {worst:.2e}");
    }
}

#[test]
fn wgpu_trains_where_an_adapter_exists() {
    if !wgpu_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(
        dir.path(),
        &[
            "train",
            "--name",
            "gpu",
            "--backend",
            "wgpu",
            "--set",
            "train.epochs=1",
            "--set",
            "data.train_limit=256",
            "--set",
            "data.val_fraction=0.01",
            "--set",
            "data.test_limit=64",
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let s = common::read_json(&dir.path().join("artifacts/gpu/summary.json"));
    assert!(s["test_accuracy"].as_f64().unwrap() > 0.2, "{s}");
}
