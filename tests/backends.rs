//! Backend parity: the same weights and batch give the same logits on flex, ndarray and (where an
//! adapter exists) wgpu, for every model kind. The wgpu training path runs where an adapter exists.

mod common;

use burn::module::Module;
use fovea::data::InputShape;
use fovea::device::{self, BackendKind};
use fovea::models::{Model, ModelConfig, cnn_lif, cnn_rnn, kernel_svm, rnn, ssgan, svm};
use fovea::train::Part;

const SHAPE: InputShape = InputShape {
    channels: 1,
    height: 28,
    width: 28,
};

fn logits_on(kind: BackendKind, config: &ModelConfig, parts: &[Part], input: &[f32]) -> Vec<f32> {
    let device = device::open(kind).unwrap();
    let model = config.init(SHAPE, 10, &device).unwrap();
    let model = fovea::tasks::classify::load_model(model, parts)
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

/// Whether the wgpu checks can run here. With `FOVEA_REQUIRE_WGPU` set (CI sets it), a missing
/// adapter fails the test instead of skipping it.
fn wgpu_available() -> bool {
    match device::open(BackendKind::Wgpu) {
        Ok(_) => true,
        Err(e) if std::env::var_os("FOVEA_REQUIRE_WGPU").is_some() => {
            panic!("FOVEA_REQUIRE_WGPU is set but wgpu is unavailable: {e:#}")
        }
        Err(e) => {
            eprintln!("SKIPPED wgpu checks: {e:#}");
            false
        }
    }
}

#[test]
fn same_weights_same_logits_on_every_backend() {
    let configs = [
        ModelConfig::default(),
        ModelConfig::Rnn(rnn::RnnConfig {
            cell: rnn::Cell::Gru,
            bidirectional: true,
            hidden: 32,
            ..Default::default()
        }),
        ModelConfig::CnnRnn(cnn_rnn::CnnRnnConfig {
            hidden: 32,
            ..Default::default()
        }),
        // Direct coding is deterministic; Poisson spikes come from each backend's own RNG.
        ModelConfig::CnnLif(cnn_lif::CnnLifConfig::default()),
        // The semi-supervised GAN's classifier (its generator is the GAN's, compared below).
        ModelConfig::Ssgan(ssgan::SsganConfig::default()),
        // The SVMs: each feature map (random Fourier features and HOG are fixed maps).
        ModelConfig::Svm(svm::SvmConfig::default()),
        ModelConfig::Svm(svm::SvmConfig {
            features: svm::SvmFeatures::Rff,
            components: 256,
            ..Default::default()
        }),
        ModelConfig::Svm(svm::SvmConfig {
            features: svm::SvmFeatures::Hog,
            ..Default::default()
        }),
        ModelConfig::Svm(svm::SvmConfig {
            features: svm::SvmFeatures::HogRff,
            components: 256,
            ..Default::default()
        }),
        ModelConfig::Svm(svm::SvmConfig {
            features: svm::SvmFeatures::HogRff,
            components: 256,
            pixel_weight: 0.5,
            ..Default::default()
        }),
    ];
    let mut backends = vec![BackendKind::Ndarray];
    if wgpu_available() {
        backends.push(BackendKind::Wgpu);
    }
    let input: Vec<f32> = (0..4 * 784)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    for config in &configs {
        let flex = burn::tensor::Device::flex();
        flex.seed(3);
        let model = config.init(SHAPE, 10, &flex).unwrap();
        let parts = vec![(
            "model".to_string(),
            model.into_record().into_bytes().unwrap().to_vec(),
        )];
        let reference = logits_on(BackendKind::Flex, config, &parts, &input);
        // The logits depend on the image (a model whose output ignored it would agree anywhere).
        assert_ne!(
            reference[..10],
            reference[10..20],
            "{}: the same logits for two different images",
            config.kind()
        );
        for &kind in &backends {
            let got = logits_on(kind, config, &parts, &input);
            let worst = fovea_kernels::max_difference(&reference, &got)
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            eprintln!(
                "{} on {kind}: max |logit difference| vs flex = {worst:.2e}",
                config.kind()
            );
            assert!(
                worst < 1e-3,
                "{} on {kind}: logits differ from flex by {worst}",
                config.kind()
            );
        }
    }
}

/// The exact kernel SVM is fitted, not initialized: its parity is checked on a made-up solution
/// (8 support rows, random α), since an unfitted one answers zeros for every image.
#[test]
fn the_kernel_svm_decides_the_same_on_every_backend() {
    use burn::tensor::{Distribution, Tensor};
    let config = kernel_svm::KernelSvmConfig {
        subset: 8,
        ..Default::default()
    };
    let flex = burn::tensor::Device::flex();
    flex.seed(5);
    let fitted = config.init(SHAPE, 10, &flex).fitted(
        Tensor::<2>::random([8, 784], Distribution::Normal(0.0, 1.0), &flex),
        Tensor::<2>::random([8, 10], Distribution::Normal(0.0, 1.0), &flex),
        Tensor::<1>::random([10], Distribution::Normal(0.0, 1.0), &flex),
        1.0 / 784.0,
    );
    let parts = vec![(
        "model".to_string(),
        Model::KernelSvm(fitted)
            .into_record()
            .into_bytes()
            .unwrap()
            .to_vec(),
    )];
    let config = ModelConfig::KernelSvm(config);
    let input: Vec<f32> = (0..4 * 784)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let reference = logits_on(BackendKind::Flex, &config, &parts, &input);
    assert_ne!(reference[..10], reference[10..20]);
    let mut backends = vec![BackendKind::Ndarray];
    if wgpu_available() {
        backends.push(BackendKind::Wgpu);
    }
    for kind in backends {
        let got = logits_on(kind, &config, &parts, &input);
        let worst = fovea_kernels::max_difference(&reference, &got)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        eprintln!("kernel-svm on {kind}: max |decision difference| vs flex = {worst:.2e}");
        assert!(worst < 1e-3, "kernel-svm on {kind}: differs by {worst}");
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
            "train.epochs=2",
            "--set",
            "data.train_limit=256",
            "--set",
            "data.val_fraction=0.01",
            "--set",
            "data.test_limit=100",
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let s = common::read_json(&dir.path().join("artifacts/gpu/summary.json"));
    let acc = s["test_accuracy"].as_f64().unwrap();
    eprintln!("wgpu: test accuracy after 2 epochs on 256 images: {acc}");
    assert!(acc > 0.3, "{s}");
}

#[test]
fn opening_a_device_leaves_the_environment_alone() {
    let before = std::env::var_os("BURN_DEVICE");
    for kind in [BackendKind::Ndarray, BackendKind::Flex] {
        device::open(kind).unwrap();
        assert_eq!(
            std::env::var_os("BURN_DEVICE"),
            before,
            "after opening {kind}"
        );
    }
}

/// The GAN's two networks: the same weights, noise and labels give the same images and
/// discriminator scores on every backend.
#[test]
fn the_gan_generates_the_same_images_on_every_backend() {
    use burn::tensor::{Int, Tensor, TensorData};
    use fovea::models::gan::GanConfig;
    let cfg = GanConfig::default();
    let flex = burn::tensor::Device::flex();
    flex.seed(4);
    let (g, d) = cfg.init(SHAPE, 10, &flex).unwrap();
    let parts = vec![
        fovea::tasks::records::module_part("generator", &g).unwrap(),
        fovea::tasks::records::module_part("discriminator", &d).unwrap(),
    ];
    let z: Vec<f32> = (0..4 * 64)
        .map(|i| ((i * 13 % 29) as f32 / 7.0) - 2.0)
        .collect();
    let outputs = |kind: BackendKind| -> Vec<f32> {
        let device = device::open(kind).unwrap();
        let (g, d) = cfg.init(SHAPE, 10, &device).unwrap();
        let g = fovea::tasks::records::load_module(g, &parts, "generator")
            .unwrap()
            .valid();
        let d = fovea::tasks::records::load_module(d, &parts, "discriminator")
            .unwrap()
            .valid();
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 3, 7, 9], [4]), &device);
        let z = Tensor::<2>::from_data(TensorData::new(z.clone(), [4, 64]), &device);
        let images = g.forward(z, y.clone());
        let mut out = images
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        out.extend(
            d.forward(images, y)
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap(),
        );
        out
    };
    let reference = outputs(BackendKind::Flex);
    assert_ne!(
        reference[..784],
        reference[784..1568],
        "two labels, two images"
    );
    let mut backends = vec![BackendKind::Ndarray];
    if wgpu_available() {
        backends.push(BackendKind::Wgpu);
    }
    for kind in backends {
        let got = outputs(kind);
        let worst = fovea_kernels::max_difference(&reference, &got)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        eprintln!("gan on {kind}: max |difference| vs flex = {worst:.2e}");
        assert!(
            worst < 1e-3,
            "gan on {kind}: outputs differ from flex by {worst}"
        );
    }
}

/// The restoring U-Net and its patch discriminator: the same weights and damaged images give the
/// same repairs and patch scores on every backend (an odd size, so the padding path runs too).
#[test]
fn the_restoring_network_repairs_the_same_on_every_backend() {
    use burn::tensor::{Tensor, TensorData};
    use fovea::models::restore::RestoreConfig;
    use fovea::restore::DamageConfig;
    let cfg = RestoreConfig {
        damage: DamageConfig {
            hole: 6,
            ..Default::default()
        },
        ..Default::default()
    };
    let shape = InputShape {
        channels: 1,
        height: 27,
        width: 30,
    };
    let flex = burn::tensor::Device::flex();
    flex.seed(6);
    let (g, d) = cfg.init(shape, &flex).unwrap();
    let parts = vec![
        fovea::tasks::records::module_part("generator", &g).unwrap(),
        fovea::tasks::records::module_part("discriminator", &d).unwrap(),
    ];
    let n = 2 * 27 * 30;
    let image: Vec<f32> = (0..n).map(|i| (i * 17 % 23) as f32 / 23.0).collect();
    let mut input = image[..27 * 30].to_vec();
    input.extend((0..27 * 30).map(|i| f32::from(i % 7 == 0)));
    input.extend_from_slice(&image[27 * 30..]);
    input.extend((0..27 * 30).map(|i| f32::from(i % 5 == 0)));
    let outputs = |kind: BackendKind| -> Vec<f32> {
        let device = device::open(kind).unwrap();
        let (g, d) = cfg.init(shape, &device).unwrap();
        let g = fovea::tasks::records::load_module(g, &parts, "generator")
            .unwrap()
            .valid();
        let d = fovea::tasks::records::load_module(d, &parts, "discriminator")
            .unwrap()
            .valid();
        let x = Tensor::<4>::from_data(TensorData::new(input.clone(), [2, 2, 27, 30]), &device);
        let img = Tensor::<4>::from_data(TensorData::new(image.clone(), [2, 1, 27, 30]), &device);
        let repaired = g.forward(x, img.clone());
        let mut out = repaired
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        out.extend(
            d.forward(img, repaired)
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap(),
        );
        out
    };
    let reference = outputs(BackendKind::Flex);
    assert_ne!(reference[..n], image[..], "the network changes its input");
    let mut backends = vec![BackendKind::Ndarray];
    if wgpu_available() {
        backends.push(BackendKind::Wgpu);
    }
    for kind in backends {
        let got = outputs(kind);
        assert_eq!(got.len(), reference.len());
        let worst = fovea_kernels::max_difference(&reference, &got)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        eprintln!("restore on {kind}: max |difference| vs flex = {worst:.2e}");
        assert!(
            worst < 1e-3,
            "restore on {kind}: outputs differ from flex by {worst}"
        );
    }
}
