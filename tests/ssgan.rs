//! The semi-supervised GAN through the real binary: it learns from the labelled images and from
//! the others without their labels, draws its samples, resumes exactly after a crash in
//! mid-epoch, and its classifier is read by `eval` and `predict`.

mod common;

use std::path::Path;

use common::{
    crash_then_resume, logged, newest_checkpoint, on_sample, read_json, run, text, train,
};

/// The names of the newest checkpoint's parts, and the classifier's and the generator's
/// weights in it (compared by value: parameter ids differ between processes).
fn newest_weights(run_dir: &Path) -> (Vec<String>, Vec<f32>, Vec<f32>) {
    let (meta, parts) = newest_checkpoint(run_dir);
    let config = fovea::config::run_config(run_dir).unwrap();
    let fovea::models::ModelConfig::Ssgan(ssgan) = &config.model else {
        panic!("not an ssgan run")
    };
    let device = burn::tensor::Device::flex();
    let (g, d) = ssgan.init(meta.shape, meta.classes.len(), &device).unwrap();
    let g = fovea::tasks::records::load_module(g, &parts, "generator").unwrap();
    let d =
        fovea::tasks::records::load_module(fovea::models::Model::Cnn(d), &parts, "model").unwrap();
    (
        parts.into_iter().map(|p| p.0).collect(),
        fovea::models::flat_params(&d),
        fovea::models::flat_params(&g),
    )
}

#[test]
fn an_ssgan_learns_from_unlabelled_images_resumes_exactly_and_classifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = on_sample(
        "ssgan.toml",
        &[
            "train.epochs=2",
            "data.labels_per_class=3",
            "model.blocks=[{ channels = 8, batch_norm = false, dropout = 0.2 }]",
            "model.hidden=[16]",
            "model.g_channels=8",
            "model.latent=8",
            "train.batch_size=32",
            "data.augment.shift=2",
        ],
    );
    let straight = train(d, "straight", &setup);
    assert!(straight.status.success(), "{}", text(&straight));
    let a = d.join("artifacts/straight");
    let info = read_json(&a.join("run.json"));
    // 3 labels for each of the 10 classes; the other training images without theirs
    assert_eq!(info["data"]["train"], 30, "{info}");
    let unlabelled = info["data"]["unlabelled"].as_u64().unwrap();
    assert!(unlabelled > 100, "{info}");
    // an epoch passes over every training image: 2 epochs of ⌈(30 + unlabelled) / 32⌉ steps
    let records = fovea::run_files::read_metrics(&a).unwrap();
    let last = records.iter().map(|r| r.step).max().unwrap();
    assert_eq!(last, 2 * (30 + unlabelled).div_ceil(32), "steps");
    let s = read_json(&a.join("summary.json"));
    for key in ["test_accuracy", "test_loss"] {
        assert!(s[key].as_f64().is_some(), "{key}: {s}");
    }
    for f in [
        "samples.png",
        "samples/epoch-001.png",
        "gan-loss.png",
        "discriminator.png",
        "confusion.png",
    ] {
        assert!(a.join(f).is_file(), "missing {f}");
    }

    let (_, b) = crash_then_resume(d, "crashed", &setup, "5");
    let (wa, wb) = (newest_weights(&a), newest_weights(&b));
    assert_eq!(wa.0, ["model", "optim", "generator", "optim_g"]);
    assert!(wa.1 == wb.1, "the classifier differs after resume");
    assert!(wa.2 == wb.2, "the generator differs after resume");
    assert_eq!(logged(&a), logged(&b), "metrics.jsonl differs after resume");

    // The classifier is read as any classifier's.
    let out = run(
        d,
        &[
            "eval",
            "artifacts/straight",
            "--checkpoint",
            "last",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["test_accuracy"], s["test_accuracy"], "{e}");
    image::GrayImage::from_pixel(28, 28, image::Luma([200]))
        .save(d.join("item.png"))
        .unwrap();
    let out = run(d, &["predict", "artifacts/straight", "item.png"]);
    assert!(out.status.success(), "{}", text(&out));
}
