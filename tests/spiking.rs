//! The spiking kind (`cnn-lif`) through the real binary: its artifacts, its early-decision
//! numbers agreeing with its final ones, eval and predict with an early exit.

mod common;

use common::{on_sample, read_json, run, text, train};

#[test]
fn a_spiking_run_reports_its_early_decisions_and_predicts_with_an_early_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = train(d, "lif", &on_sample("cnn-lif.toml", &["train.epochs=2"]));
    assert!(out.status.success(), "{}", text(&out));
    let run_dir = d.join("artifacts/lif");
    for f in [
        "early-decision.png",
        "firing.png",
        "confusion.png",
        "loss.png",
    ] {
        assert!(run_dir.join(f).is_file(), "missing {f}");
    }
    let s = read_json(&run_dir.join("summary.json"));
    let early = &s["early_decision"];
    let acc: Vec<f64> = serde_json::from_value(early["accuracy"].clone()).unwrap();
    let fin: Vec<f64> = serde_json::from_value(early["final_fraction"].clone()).unwrap();
    assert_eq!(acc.len(), 8, "{early}");
    // After the last step the readout is the logits: the same accuracy, every prediction final.
    assert_eq!(acc[7], s["test_accuracy"].as_f64().unwrap(), "{s}");
    assert_eq!(fin[7], 1.0);
    assert!(fin.windows(2).all(|w| w[0] <= w[1]), "{fin:?}");
    let step = s["test_decision_step"].as_f64().unwrap();
    assert!((1.0..=8.0).contains(&step), "{step}");
    assert_eq!(early["mean_decision_step"].as_f64().unwrap(), step);
    let v4 = s["test_v4_rate"].as_f64().unwrap();
    assert!(v4 > 0.0 && v4 < 1.0, "{v4}");
    let layers = s["firing"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0]["neurons"], 3136);
    let per_image: f64 = layers
        .iter()
        .map(|l| l["spikes_per_image"].as_f64().unwrap())
        .sum();
    assert!((per_image - s["test_spikes_per_image"].as_f64().unwrap()).abs() < 1e-6);
    // The firing rates are logged per epoch with the validation metrics.
    let vals: Vec<_> = fovea::run_files::read_metrics(&run_dir)
        .unwrap()
        .into_iter()
        .filter(|r| r.split == "val")
        .collect();
    assert_eq!(vals.len(), 2);
    for key in [
        "decision_step",
        "v4_rate",
        "output_rate",
        "spikes_per_image",
    ] {
        assert!(vals[1].get(key).is_some(), "val record lacks {key}");
    }

    // eval recomputes the same numbers from the checkpoint.
    let out = run(
        d,
        &["eval", "artifacts/lif", "--checkpoint", "last", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["test_accuracy"], s["last"]["test_accuracy"]);
    assert_eq!(e["early_decision"], s["early_decision"]);
    let out = run(d, &["eval", "artifacts/lif", "--checkpoint", "last"]);
    assert!(
        text(&out).contains("accuracy after time step t"),
        "{}",
        text(&out)
    );

    // predict: a margin of 0 decides every image at the first step; none without the option.
    let raw = fovea::data::sources::sample().unwrap();
    for i in 0..3 {
        image::GrayImage::from_raw(28, 28, raw.test.image(i).to_vec())
            .unwrap()
            .save(d.join(format!("{i}.png")))
            .unwrap();
    }
    let predict = |extra: &[&str]| {
        let mut args = vec![
            "predict",
            "artifacts/lif",
            "0.png",
            "1.png",
            "2.png",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = run(d, &args);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    };
    for p in predict(&["--exit-margin", "0"]) {
        assert_eq!(p["decided_at_step"], 1, "{p}");
        assert_eq!(p["steps"], 8, "{p}");
    }
    for p in predict(&[]) {
        assert!(p.get("decided_at_step").is_none(), "{p}");
    }
    // A margin that is never reached reads every image after the last step, as without one.
    let late = predict(&["--exit-margin", "1"]);
    let full = predict(&[]);
    for (a, b) in late.iter().zip(&full) {
        let step = a["decided_at_step"].as_u64().unwrap();
        if step == 8 {
            assert_eq!(a["top"], b["top"]);
        }
    }
    let out = run(
        d,
        &["predict", "artifacts/lif", "0.png", "--exit-margin", "2"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--exit-margin must be in [0, 1]"));
}
