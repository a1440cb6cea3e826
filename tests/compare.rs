//! `fovea compare` through the real binary, on the built-in sample: models trained in child
//! processes at two training sizes, the three tables, the charts, a failed model reported while
//! the others run, and finished runs reused on a second invocation.

mod common;

use common::{on_sample, read_json, run, text};

fn compare_file() -> String {
    format!(
        r#"
title = "tiny comparison"
train_sizes = [200, 300]
set = ["data.dataset=\"sample\"", "data.val_fraction=0.0", "data.test_limit=100"]

[[model]]
name = "cnn"
config = "{root}/config/cnn.toml"
set = ["model.blocks=[{{channels=4}}]", "model.hidden=[]", "train.epochs=1"]

[[model]]
name = "svm"
config = "{root}/config/svm-pixels.toml"
set = ["train.epochs=1"]

[[model]]
name = "kernel"
config = "{root}/config/svm-kernel.toml"
set = ["model.subset=250"]

[[model]]
name = "broken"
config = "{root}/config/no-such-model.toml"
"#,
        root = env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn compare_trains_measures_tabulates_draws_and_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cmp.toml"), compare_file()).unwrap();
    let args = ["compare", "--config", "cmp.toml", "--quiet"];
    let first = run(d, &args);
    let out = text(&first);
    // One model cannot be read: the command fails (status 2) after the others ran.
    assert_eq!(first.status.code(), Some(2), "{out}");
    assert!(out.contains("2 of the comparison's runs failed"), "{out}");
    let root = d.join("artifacts/cmp");
    for f in [
        "comparison.md",
        "comparison.csv",
        "comparison.json",
        "comparison.png",
        "per-class.png",
        "learning-curves.png",
        "compare.toml",
    ] {
        assert!(root.join(f).is_file(), "{f} missing:\n{out}");
    }
    let json = read_json(&root.join("comparison.json"));
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    for r in rows {
        let model = r["model"].as_str().unwrap();
        if model == "broken" {
            assert!(
                r["error"].as_str().unwrap().contains("no-such-model.toml"),
                "{r}"
            );
            continue;
        }
        let acc = r["test_accuracy"].as_f64().unwrap();
        let train = r["train_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{r}");
        assert!((r["gap"].as_f64().unwrap() - (train - acc)).abs() < 1e-9);
        assert!(r["inference_ms_per_image"].as_f64().unwrap() > 0.0);
        assert!(r["peak_memory_mib"].as_f64().unwrap() > 0.0);
        assert_eq!(r["per_class_accuracy"].as_array().unwrap().len(), 10);
        // the same test set for every model
        let run = r["run"].as_str().unwrap();
        let summary = read_json(&root.join(run).join("summary.json"));
        assert_eq!(summary["test_count"], 100, "{run}");
        assert_eq!(summary["test_accuracy"].as_f64().unwrap(), acc, "{run}");
        // the training-set size asked for (the kernel SVM: its subset of it)
        let size = r["train_size"].as_u64().unwrap();
        let expected = if model == "kernel" {
            size.min(250)
        } else {
            size
        };
        assert_eq!(r["train_images"].as_u64().unwrap(), expected, "{r}");
    }
    let md = std::fs::read_to_string(root.join("comparison.md")).unwrap();
    assert!(md.contains("## Per-class test accuracy"), "{md}");
    assert!(md.contains("## Learning curves"), "{md}");
    assert!(md.contains("failed: model `broken`"), "{md}");
    let csv = std::fs::read_to_string(root.join("comparison.csv")).unwrap();
    assert_eq!(csv.lines().count(), 9, "{csv}");

    // A second invocation reuses every finished run: nothing is trained again.
    let summary = root.join("cnn-n300/summary.json");
    let before = std::fs::metadata(&summary).unwrap().modified().unwrap();
    let second = run(d, &["compare", "--config", "cmp.toml"]);
    let out = text(&second);
    for r in ["cnn-n200", "svm-n300", "kernel-n300"] {
        assert!(
            out.contains(&format!("reusing artifacts/cmp/{r} (finished before)")),
            "{r} not reused:\n{out}"
        );
    }
    assert!(!out.contains("training cnn"), "{out}");
    assert_eq!(
        std::fs::metadata(&summary).unwrap().modified().unwrap(),
        before
    );
}

#[test]
fn a_kernel_svm_beyond_its_memory_limit_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = [
        &["train"][..],
        &on_sample("svm-kernel.toml", &["model.subset=60000"]),
    ]
    .concat();
    let o = run(d, &args);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("subset = 60000"), "{out}");
    assert!(out.contains("max_kernel_mib"), "{out}");
    assert!(
        !d.join("artifacts").exists(),
        "nothing is written for a refused config"
    );
}

/// SIGTERM to `compare` alone (as `timeout` or `docker stop` send it) reaches the training it is
/// running in a child process: that run checkpoints and stops, compare exits with 130, and no
/// child is left behind.
#[test]
fn sigterm_to_compare_interrupts_the_run_it_is_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = format!(
        "title = \"t\"\nset = [\"data.dataset=\\\"sample\\\"\", \"data.val_fraction=0.0\", \
         \"train.epochs=20\"]\n[[model]]\nname = \"cnn\"\nconfig = \"{}/config/cnn.toml\"\n",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::write(d.join("cmp.toml"), file).unwrap();
    let mut parent = common::fovea(d)
        .args(["compare", "--config", "cmp.toml", "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run_dir = d.join("artifacts/cmp/cnn");
    let start = std::time::Instant::now();
    while fovea::train::checkpoint::list(&run_dir.join("checkpoints"))
        .map(|l| l.is_empty())
        .unwrap_or(true)
    {
        assert!(start.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &parent.id().to_string()])
        .status()
        .unwrap();
    let status = parent.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_eq!(
        read_json(&run_dir.join("run.json"))["status"],
        "interrupted"
    );
    assert!(!run_dir.join("summary.json").exists());
}
