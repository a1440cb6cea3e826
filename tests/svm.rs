//! The SVM kind through the real binary: each feature map trains in the shared loop, resumes
//! exactly after a crash in mid-epoch, and works with eval and predict.

mod common;

use common::{crash_then_resume, logged, on_sample, read_json, run, text, train};

#[test]
fn each_svm_trains_resumes_exactly_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, file) in [
        ("pixels", "svm-pixels.toml"),
        ("rff", "svm-rff.toml"),
        ("hog", "svm-hog.toml"),
    ] {
        let setup = on_sample(
            file,
            &[
                "train.epochs=2",
                "train.batch_size=32",
                "model.components=256",
                "train.lr=0.01",
            ],
        );
        let out = train(d, name, &setup);
        assert!(out.status.success(), "{name}: {}", text(&out));
        let s = read_json(&d.join(format!("artifacts/{name}/summary.json")));
        let acc = s["test_accuracy"].as_f64().unwrap();
        eprintln!("svm {name}: test accuracy {acc} after 2 epochs on 320 sample images");
        assert!(acc > 0.4, "{name}: {s}");
        if name == "rff" {
            // a crash in mid-epoch, then resume: the same metrics, step by step
            let (_, crashed) = crash_then_resume(d, "rff-crashed", &setup, "13");
            assert_eq!(
                logged(&d.join("artifacts/rff")),
                logged(&crashed),
                "metrics.jsonl differs after resume"
            );
        }
    }
    // eval and predict read an SVM run like any classifier run
    let e = eval_and_predict(d, "artifacts/hog");
    let s = read_json(&d.join("artifacts/hog/summary.json"));
    assert_eq!(e["test_accuracy"], s["best"]["test_accuracy"], "{e}");
}

/// `fovea eval RUN --json` (its output) and `fovea predict RUN` on an image, both succeeding.
fn eval_and_predict(d: &std::path::Path, run_dir: &str) -> serde_json::Value {
    let out = run(d, &["eval", run_dir, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let img = d.join("x.png");
    image::GrayImage::from_fn(28, 28, |x, _| image::Luma([(x * 9) as u8]))
        .save(&img)
        .unwrap();
    let out = run(d, &["predict", run_dir, "x.png", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    e
}

/// The exact kernel SVM: fitted in one piece, deterministic (so a run interrupted before its end
/// and started over ends with the same model), read by eval and predict like any classifier.
#[test]
fn the_kernel_svm_fits_the_same_model_twice_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = on_sample("svm-kernel.toml", &["model.subset=300"]);
    for name in ["k1", "k2"] {
        let out = train(d, name, &setup);
        assert!(out.status.success(), "{name}: {}", text(&out));
    }
    let s1 = read_json(&d.join("artifacts/k1/summary.json"));
    let s2 = read_json(&d.join("artifacts/k2/summary.json"));
    let acc = s1["test_accuracy"].as_f64().unwrap();
    eprintln!("kernel-svm on 300 sample images: test accuracy {acc}");
    assert!(acc > 0.6, "{s1}");
    assert_eq!(s1["test_accuracy"], s2["test_accuracy"]);
    assert_eq!(s1["test_loss"], s2["test_loss"]);
    assert_eq!(s1["confusion_matrix"], s2["confusion_matrix"]);
    // The fit is logged as one train record (on the subset) and one validation record.
    let records = fovea::run_files::read_metrics(&d.join("artifacts/k1")).unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(
        (records[0].split.as_str(), records[1].split.as_str()),
        ("train", "val")
    );
    assert!(records[0].get("support_vectors").unwrap() > 0.0);
    let e = eval_and_predict(d, "artifacts/k1");
    assert_eq!(e["test_accuracy"], s1["test_accuracy"], "{e}");
}
