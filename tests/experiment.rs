//! `fovea experiment` through the real binary: every arm once per seed, a run named by an
//! earlier arm (`${arm}`), the table of means and spreads, and reuse of finished runs.

mod common;

use common::{read_json, run, text};

/// Applied to every arm, after the arm's own overrides.
const SMALL: [&str; 4] = [
    "data.dataset=sample",
    "data.train_limit=200",
    "data.val_fraction=0.02",
    "data.test_limit=100",
];

/// `fovea experiment exp.toml --quiet` with `SMALL` set on every arm.
fn small_experiment() -> Vec<&'static str> {
    let mut args = vec!["experiment", "exp.toml", "--quiet"];
    for s in SMALL {
        args.extend(["--set", s]);
    }
    args
}

fn experiment(cnn_epochs: usize) -> String {
    format!(
        r#"
title = "tiny"
seeds = [1, 2]

[[arm]]
name = "gan"
about = "a tiny GAN"
config = "{root}/config/gan.toml"
metric = "test_fid"
set = ["train.epochs=1", "model.g_channels=4", "model.d_channels=4", "eval.fid_samples=40", "eval.judge_epochs=1", "eval.gan_train_epochs=1"]

[[arm]]
name = "cnn"
config = "{root}/config/cnn.toml"
set = ["model.blocks=[{{channels=4}}]", "train.epochs={cnn_epochs}"]

[[arm]]
name = "cnn+gan"
config = "{root}/config/cnn.toml"
set = ["train.epochs=1", "model.blocks=[{{channels=4}}]", "data.synthetic.generator=\"${{gan}}\"", "data.synthetic.checkpoint=\"last\""]
"#,
        root = env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn an_experiment_trains_each_arm_per_seed_tabulates_and_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("exp.toml"), experiment(1)).unwrap();
    let args = small_experiment();
    let first = run(d, &args);
    assert!(first.status.success(), "{}", text(&first));
    let root = d.join("artifacts/exp");
    let results = read_json(&root.join("results.json"));
    let arms = results["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 3);
    for arm in arms {
        let values: Vec<f64> = arm["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"].as_f64().unwrap())
            .collect();
        assert_eq!(values.len(), 2, "{arm}");
        let mean = (values[0] + values[1]) / 2.0;
        assert!(
            (arm["mean"].as_f64().unwrap() - mean).abs() < 1e-12,
            "{arm}"
        );
        // the sample standard deviation of two values is |a − b| / √2
        let std = (values[0] - values[1]).abs() / 2f64.sqrt();
        assert!((arm["std"].as_f64().unwrap() - std).abs() < 1e-12, "{arm}");
    }
    assert_eq!(arms[0]["metric"], "test_fid");
    // Each seed's augmented run drew from that seed's GAN.
    for seed in [1, 2] {
        let info = read_json(&root.join(format!("cnn+gan-seed{seed}/run.json")));
        let generator = info["data"]["synthetic"]["generator"].as_str().unwrap();
        assert!(
            generator.ends_with(&format!("gan-seed{seed}")),
            "{generator}"
        );
        let config = std::fs::read_to_string(root.join(format!("cnn-seed{seed}/config.toml")));
        assert!(config.unwrap().contains(&format!("seed = {seed}")));
    }
    let table = std::fs::read_to_string(root.join("results.md")).unwrap();
    for arm in ["| gan |", "| cnn |", "| cnn+gan |", "test_fid", "±"] {
        assert!(table.contains(arm), "{arm}: {table}");
    }

    // Again: every run is reused, nothing is trained, the table is the same.
    let again = run(d, &args);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        text(&again).matches("reusing").count(),
        6,
        "{}",
        text(&again)
    );
    assert!(!text(&again).contains("training arm"), "{}", text(&again));
    assert_eq!(
        read_json(&root.join("results.json"))["arms"],
        results["arms"]
    );

    // A changed arm does not silently reuse runs of another config: they fail, the rest is kept.
    std::fs::write(d.join("exp.toml"), experiment(2)).unwrap();
    let changed = run(d, &args);
    assert_eq!(changed.status.code(), Some(2), "{}", text(&changed));
    assert!(
        text(&changed).contains("holds a run of another config"),
        "{}",
        text(&changed)
    );
    let table = std::fs::read_to_string(root.join("results.md")).unwrap();
    assert!(table.contains("failed"), "{table}");
    assert!(root.join("gan-seed1/summary.json").is_file());
}

#[test]
fn an_experiment_file_naming_a_later_arm_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text_of = experiment(1).replace("${gan}", "${cnn+gan}");
    std::fs::write(d.join("exp.toml"), text_of).unwrap();
    let out = run(d, &["experiment", "exp.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("exp.toml: arm `cnn+gan`") && text(&out).contains("not an earlier arm"),
        "{}",
        text(&out)
    );
    assert!(!d.join("artifacts").exists(), "nothing is written");
}

#[test]
fn ctrl_c_stops_the_experiment_after_the_run_it_interrupted_and_it_continues_later() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = env!("CARGO_MANIFEST_DIR");
    let file = format!(
        r#"
title = "interrupted"
seeds = [1, 2]
[[arm]]
name = "a"
config = "{root}/config/cnn.toml"
set = ["train.epochs=8", "model.blocks=[{{channels=4}}]"]
[[arm]]
name = "b"
config = "{root}/config/cnn.toml"
set = ["train.epochs=1", "model.blocks=[{{channels=4}}]"]
"#
    );
    std::fs::write(d.join("exp.toml"), file).unwrap();
    let args = small_experiment();
    let mut child = common::fovea(d).args(&args).spawn().unwrap();
    let ckpts = d.join("artifacts/exp/a-seed1/checkpoints");
    let start = Instant::now();
    while fovea::train::checkpoint::list(&ckpts)
        .map(|l| l.len())
        .unwrap_or(0)
        < 1
    {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    // Nothing after the interrupted run was started.
    assert!(!d.join("artifacts/exp/b-seed1").exists());
    let results = read_json(&d.join("artifacts/exp/results.json"));
    assert_eq!(results["arms"][1]["runs"].as_array().unwrap().len(), 0);

    let again = run(d, &args);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("resuming the interrupted run"),
        "{}",
        text(&again)
    );
    let results = read_json(&d.join("artifacts/exp/results.json"));
    for arm in results["arms"].as_array().unwrap() {
        let runs = arm["runs"].as_array().unwrap();
        assert!(runs.iter().all(|r| r["value"].is_number()), "{arm}");
        assert_eq!(runs.len(), 2);
    }
}
