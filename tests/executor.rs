//! Where `compare` and `experiment` run their trainings: here, several at once (`--jobs`), or as
//! Slurm jobs (`--executor slurm`), each giving the table the one-at-a-time run gives. The
//! Slurm tests need a cluster: `scripts/slurm-local.sh` starts one on this machine. Without one
//! they are skipped, saying so; with `FOVEA_REQUIRE_SLURM` set (CI sets it), its absence fails.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{read_json, run, text};

/// Two small models on the sample.
fn compare_file(epochs: usize) -> String {
    format!(
        r#"
title = "tiny"
set = ["data.dataset=\"sample\"", "data.val_fraction=0.0", "data.test_limit=100", "data.train_limit=300"]

[[model]]
name = "cnn"
config = "{root}/config/cnn.toml"
set = ["model.blocks=[{{channels=4}}]", "model.hidden=[]", "train.epochs={epochs}"]

[[model]]
name = "svm"
config = "{root}/config/svm-pixels.toml"
set = ["train.epochs=2"]
"#,
        root = env!("CARGO_MANIFEST_DIR")
    )
}

/// Per model, its test accuracy, from a compare folder's `comparison.json`.
fn accuracies(d: &Path, name: &str) -> Vec<(String, f64)> {
    let json = read_json(&d.join("artifacts").join(name).join("comparison.json"));
    json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let accuracy = r["test_accuracy"]
                .as_f64()
                .unwrap_or_else(|| panic!("no accuracy: {r}"));
            (r["model"].as_str().unwrap().to_string(), accuracy)
        })
        .collect()
}

fn compare(d: &Path, name: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["compare", "--config", "cmp.toml", "--quiet", "--name", name];
    args.extend_from_slice(extra);
    run(d, &args)
}

#[test]
fn two_local_jobs_give_the_table_one_at_a_time_gives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cmp.toml"), compare_file(1)).unwrap();
    let one = compare(d, "one", &[]);
    assert!(one.status.success(), "{}", text(&one));
    let two = compare(d, "two", &["--jobs", "2"]);
    assert!(two.status.success(), "{}", text(&two));
    assert_eq!(accuracies(d, "one"), accuracies(d, "two"));
    // each of the two ran on its share of the machine's threads, as its run.json says
    let share = (std::thread::available_parallelism().unwrap().get() / 2).max(1);
    for model in ["cnn", "svm"] {
        let info = read_json(&d.join("artifacts/two").join(model).join("run.json"));
        assert_eq!(info["threads"], share, "{model}: {info}");
    }
    assert!(text(&two).contains("threads)"), "{}", text(&two));
}

/// Whether a Slurm cluster answers here; panics without one when `FOVEA_REQUIRE_SLURM` is set.
fn slurm() -> bool {
    let up = std::process::Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up {
        assert!(
            std::env::var_os("FOVEA_REQUIRE_SLURM").is_none(),
            "FOVEA_REQUIRE_SLURM is set but no Slurm cluster answers (scripts/slurm-local.sh starts one)"
        );
        eprintln!("skipped: no Slurm cluster (scripts/slurm-local.sh starts one on this machine)");
    }
    up
}

const SLURM: [&str; 6] = [
    "--executor",
    "slurm",
    "--cpus-per-task",
    "1",
    "--poll-seconds",
    "0.3",
];

#[test]
fn slurm_jobs_give_the_table_local_training_gives() {
    if !slurm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cmp.toml"), compare_file(1)).unwrap();
    let local = compare(d, "local", &[]);
    assert!(local.status.success(), "{}", text(&local));
    let cluster = compare(d, "cluster", &SLURM);
    assert!(cluster.status.success(), "{}", text(&cluster));
    assert_eq!(accuracies(d, "local"), accuracies(d, "cluster"));
    let said = text(&cluster);
    assert!(
        said.contains("submitted") && said.contains("as job"),
        "{said}"
    );
    let jobs = read_json(&d.join("artifacts/cluster/slurm/jobs.json"));
    assert_eq!(jobs.as_object().unwrap().len(), 2, "{jobs}");
    // again: both reused, nothing submitted
    let again = compare(d, "cluster", &SLURM);
    assert!(again.status.success(), "{}", text(&again));
    assert!(!text(&again).contains("submitted"), "{}", text(&again));
}

#[test]
fn a_cancelled_slurm_job_is_a_failed_row_and_resumes_to_the_same_end() {
    if !slurm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cmp.toml"), compare_file(6)).unwrap();
    let local = compare(d, "local", &[]);
    assert!(local.status.success(), "{}", text(&local));

    let mut first = common::fovea(d)
        .args([
            "compare", "--config", "cmp.toml", "--quiet", "--name", "cluster",
        ])
        .args(SLURM)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the cnn's job has written a checkpoint: cancel it
    let run_dir = d.join("artifacts/cluster/cnn");
    let start = Instant::now();
    while fovea::train::checkpoint::list(&run_dir.join("checkpoints"))
        .map(|l| l.is_empty())
        .unwrap_or(true)
    {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    let jobs = read_json(&d.join("artifacts/cluster/slurm/jobs.json"));
    let id = jobs["cnn"].as_str().unwrap().to_string();
    let cancelled = std::process::Command::new("scancel")
        .arg(&id)
        .status()
        .unwrap();
    assert!(cancelled.success());
    let out = first.wait_with_output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("1 of the comparison's runs failed"), "{said}");
    let table = read_json(&d.join("artifacts/cluster/comparison.json"));
    let cnn = &table["rows"][0];
    assert!(
        cnn["error"]
            .as_str()
            .unwrap()
            .contains(&format!("job {id}")),
        "{cnn}"
    );
    assert!(!run_dir.join("summary.json").exists());

    // the same command again: the svm reused, the cnn resubmitted, resumed, and it ends as
    // the uninterrupted local run did
    let again = compare(d, "cluster", &SLURM);
    let said = text(&again);
    assert!(again.status.success(), "{said}");
    assert!(said.contains("reusing"), "{said}");
    assert!(said.contains("to resume its interrupted run"), "{said}");
    assert_eq!(accuracies(d, "local"), accuracies(d, "cluster"));
    let info = read_json(&run_dir.join("run.json"));
    assert_eq!(info["resumes"].as_array().map(Vec::len), Some(1), "{info}");
}

#[test]
fn interrupted_with_its_jobs_left_running_the_command_attaches_to_them_again() {
    if !slurm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cmp.toml"), compare_file(80)).unwrap();
    let local = compare(d, "local", &[]);
    assert!(local.status.success(), "{}", text(&local));

    let first = common::fovea(d)
        .args([
            "compare", "--config", "cmp.toml", "--quiet", "--name", "cluster",
        ])
        .args(SLURM)
        .args(["--on-interrupt", "leave"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let jobs_file = d.join("artifacts/cluster/slurm/jobs.json");
    let start = Instant::now();
    while !jobs_file.exists() || read_json(&jobs_file).as_object().unwrap().len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no jobs submitted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    let out = first.wait_with_output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(130), "{said}");
    assert!(said.contains("left jobs"), "{said}");

    // the same command again follows the jobs it left, submitting nothing
    let again = compare(d, "cluster", &SLURM);
    let said = text(&again);
    assert!(again.status.success(), "{said}");
    assert!(!said.contains("submitted"), "{said}");
    assert!(said.contains("attaching to job"), "{said}");
    assert_eq!(accuracies(d, "local"), accuracies(d, "cluster"));
}

#[test]
fn an_arm_naming_another_runs_after_it_on_slurm_and_gives_the_local_table() {
    if !slurm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = format!(
        r#"
title = "tiny"
seeds = [1]

[[arm]]
name = "gan"
config = "{root}/config/gan.toml"
metric = "test_fid"
set = ["train.epochs=1", "model.g_channels=4", "model.d_channels=4", "eval.fid_samples=40", "eval.judge_epochs=1", "eval.gan_train_epochs=1"]

[[arm]]
name = "cnn+gan"
config = "{root}/config/cnn.toml"
set = ["train.epochs=1", "model.blocks=[{{channels=4}}]", "data.synthetic.generator=\"${{gan}}\"", "data.synthetic.checkpoint=\"last\""]
"#,
        root = env!("CARGO_MANIFEST_DIR")
    );
    std::fs::write(d.join("exp.toml"), file).unwrap();
    let small = [
        "--set",
        "data.dataset=\"sample\"",
        "--set",
        "data.train_limit=200",
        "--set",
        "data.val_fraction=0.02",
        "--set",
        "data.test_limit=100",
    ];
    let experiment = |name: &str, extra: &[&str]| {
        let mut args = vec!["experiment", "exp.toml", "--quiet", "--name", name];
        args.extend_from_slice(&small);
        args.extend_from_slice(extra);
        run(d, &args)
    };
    let local = experiment("local", &[]);
    assert!(local.status.success(), "{}", text(&local));
    let cluster = experiment("cluster", &SLURM);
    let said = text(&cluster);
    assert!(cluster.status.success(), "{said}");
    // both submitted at once, the second to start after the first (afterok)
    let script = std::fs::read_to_string(d.join("artifacts/cluster/slurm/cnn+gan-seed1.sh"));
    assert!(script.is_ok(), "{said}");
    let values = |name: &str| -> Vec<serde_json::Value> {
        let r = read_json(&d.join("artifacts").join(name).join("results.json"));
        r["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["runs"][0]["value"].clone())
            .collect()
    };
    assert_eq!(values("local"), values("cluster"), "{said}");
    assert!(values("cluster").iter().all(|v| v.is_number()), "{said}");
}
