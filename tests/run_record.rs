//! The run record survives every crash: a run stopped before its first checkpoint, a crash between
//! the step and best checkpoints or between the epoch-end records and the checkpoint, a malformed
//! metrics line, a resume on another backend, a silent fall-back to the sample, changed folder data.

mod common;

use std::path::Path;

use common::{read_json, run, text, train};

/// The metrics a run logged, without the timing fields (which differ between processes).
fn logged(run_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("elapsed_s");
            o.remove("images_per_sec");
            v.to_string()
        })
        .collect()
}

fn weights(run_dir: &Path, which: &str) -> Vec<f32> {
    let loaded = fovea::commands::runs::load_run(run_dir, which, None).unwrap();
    fovea::models::flat_params(&loaded.model)
}

/// The optimizer step a checkpoint file was taken at.
fn checkpoint_step(path: &Path) -> u64 {
    let (meta, _): (serde_json::Value, _) = fovea::train::checkpoint::read(path).unwrap();
    meta["state"]["step"].as_u64().unwrap()
}

#[test]
fn a_run_stopped_before_its_first_checkpoint_can_be_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = [
        "--set",
        "train.epochs=1",
        "--set",
        "train.checkpoint_every=0",
    ];
    let straight = train(d, "straight", &setup);
    assert!(straight.status.success(), "{}", text(&straight));
    let crashed = train(
        d,
        "early",
        &[&setup[..], &["--crash-at-step", "2"]].concat(),
    );
    assert_eq!(crashed.status.code(), Some(137), "{}", text(&crashed));
    assert!(
        fovea::train::checkpoint::list(&d.join("artifacts/early/checkpoints"))
            .unwrap()
            .is_empty()
    );
    let resumed = run(d, &["resume", "artifacts/early"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let (a, b) = (d.join("artifacts/straight"), d.join("artifacts/early"));
    assert_eq!(weights(&a, "last"), weights(&b, "last"));
    assert_eq!(logged(&a), logged(&b));
}

#[test]
fn best_ckpt_always_holds_the_weights_of_best_step() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = train(d, "b", &["--set", "train.epochs=2"]);
    assert!(out.status.success(), "{}", text(&out));
    let run_dir = d.join("artifacts/b");
    let ckpts = run_dir.join("checkpoints");
    let best_step = read_json(&run_dir.join("summary.json"))["best_step"]
        .as_u64()
        .unwrap();
    assert_eq!(checkpoint_step(&ckpts.join("best.ckpt")), best_step);
    // The state a crash between the step checkpoint and best.ckpt leaves: best.ckpt lags behind.
    let other = fovea::train::checkpoint::list(&ckpts)
        .unwrap()
        .into_iter()
        .find(|(s, _)| *s != best_step)
        .unwrap();
    std::fs::copy(&other.1, ckpts.join("best.ckpt")).unwrap();
    let resumed = run(d, &["resume", "artifacts/b", "--quiet"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(
        checkpoint_step(&ckpts.join("best.ckpt")),
        best_step,
        "resume must repair best.ckpt"
    );
}

#[test]
fn a_crash_after_the_epoch_records_leaves_no_duplicate_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = [
        "--set",
        "train.epochs=2",
        "--set",
        "train.checkpoint_every=5",
    ];
    let straight = train(d, "straight", &setup);
    assert!(straight.status.success(), "{}", text(&straight));
    // Step 10 ends epoch 1: its step checkpoint is written, then the crash comes.
    let crashed = train(d, "dup", &[&setup[..], &["--crash-at-step", "10"]].concat());
    assert_eq!(crashed.status.code(), Some(137), "{}", text(&crashed));
    // The epoch-end records reached metrics.jsonl before the crash (as if it came just after).
    let a = d.join("artifacts/straight");
    let b = d.join("artifacts/dup");
    let straight_text = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    let epoch_rows: String = straight_text
        .lines()
        .filter(|l| l.contains("\"scope\":\"epoch\"") && l.contains("\"epoch\":1,"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(epoch_rows.lines().count(), 2, "{straight_text}");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(b.join("metrics.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, epoch_rows.as_bytes()).unwrap();
    drop(f);
    let resumed = run(d, &["resume", "artifacts/dup", "--quiet"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(logged(&a), logged(&b));
    assert_eq!(
        std::fs::read_to_string(a.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        std::fs::read_to_string(b.join("metrics.csv"))
            .unwrap()
            .lines()
            .count()
    );
}

#[test]
fn a_malformed_metrics_line_is_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let crashed = train(d, "m", &["--set", "train.epochs=1", "--crash-at-step", "7"]);
    assert_eq!(crashed.status.code(), Some(137), "{}", text(&crashed));
    let path = d.join("artifacts/m/metrics.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.insert(1, "{\"epoch\": 1, \"step\": oops".into());
    let tampered = lines.join("\n") + "\n";
    std::fs::write(&path, &tampered).unwrap();
    let out = run(d, &["resume", "artifacts/m", "--quiet"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("metrics.jsonl") && t.contains("line 2"), "{t}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), tampered);
}

#[test]
fn the_summary_reports_the_last_and_the_best_weights() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = train(d, "s", &["--set", "train.epochs=2"]);
    assert!(out.status.success(), "{}", text(&out));
    let run_dir = d.join("artifacts/s");
    let s = read_json(&run_dir.join("summary.json"));
    assert_eq!(s["best"]["checkpoint"], "best.ckpt", "{s}");
    assert_eq!(s["best"]["step"], s["best_step"], "{s}");
    assert_eq!(s["last"]["step"], s["steps"], "{s}");
    // The last weights' numbers stay at the top level, as before.
    assert_eq!(s["last"]["test_accuracy"], s["test_accuracy"]);
    // `eval` reads the best checkpoint by default: it agrees with the summary's `best`.
    let out = run(d, &["eval", "artifacts/s", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["test_accuracy"], s["best"]["test_accuracy"]);
    assert_eq!(e["test_loss"], s["best"]["test_loss"]);
    let out = run(
        d,
        &["eval", "artifacts/s", "--checkpoint", "last", "--json"],
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["test_loss"], s["last"]["test_loss"]);
}

#[test]
fn every_resume_is_recorded_and_a_backend_change_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let crashed = train(d, "r", &["--set", "train.epochs=1", "--crash-at-step", "7"]);
    assert_eq!(crashed.status.code(), Some(137), "{}", text(&crashed));
    let out = run(
        d,
        &["resume", "artifacts/r", "--backend", "ndarray", "--quiet"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("warning") && t.contains("flex") && t.contains("ndarray"),
        "{t}"
    );
    let info = read_json(&d.join("artifacts/r/run.json"));
    assert_eq!(
        info["backend"], "flex",
        "the run's own backend stays: {info}"
    );
    let r = &info["resumes"][0];
    assert_eq!(r["backend"], "ndarray", "{info}");
    assert_eq!(r["step"], 6, "{info}");
    assert!(r["threads"].as_u64().unwrap() >= 1, "{info}");
    assert!(r["time"].as_str().unwrap().starts_with("20"), "{info}");
    assert!(
        r["checkpoint"]
            .as_str()
            .unwrap()
            .ends_with("step-000000006.ckpt")
    );
}

#[test]
fn a_fall_back_to_the_sample_is_said_and_named_even_when_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = common::fovea(d)
        .env("FOVEA_SYSTEM_DATA", d.join("no-system-datasets"))
        .args(["train", "--set", "data.dataset=fashion-mnist"])
        .args(common::SMALL)
        .args(["--set", "train.epochs=1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("built-in sample"),
        "{}",
        text(&out)
    );
    let runs: Vec<String> = std::fs::read_dir(d.join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].starts_with("cnn-sample-"), "{runs:?}");
    let info = read_json(&d.join("artifacts").join(&runs[0]).join("run.json"));
    assert_eq!(info["data"]["dataset"], "sample", "{info}");
    assert!(
        info["data"]["fallback"]
            .as_str()
            .unwrap()
            .contains("fashion-mnist"),
        "{info}"
    );
}

/// A folder dataset of two classes with a few distinct 8×8 grayscale images each.
fn write_folder(root: &Path) {
    for (class, shade) in [("dark", 20), ("light", 200)] {
        common::image_class(&root.join(class), 12, 8, shade);
    }
}

#[test]
fn resume_refuses_a_folder_dataset_whose_files_changed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_folder(&d.join("imgs"));
    let args = [
        "train",
        "--name",
        "f",
        "--set",
        "data.dataset=folder",
        "--data-dir",
        "imgs",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.checkpoint_every=2",
        "--set",
        "train.epochs=2",
        "--quiet",
        "--crash-at-step",
        "5",
    ];
    let out = run(d, &args);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out));
    let info = read_json(&d.join("artifacts/f/run.json"));
    let files = info["data"]["files"].as_array().unwrap();
    assert!(
        !files.is_empty() && files[0]["sha256"].as_str().unwrap().len() == 64,
        "{info}"
    );
    // Same names, same size, one pixel changed.
    let img = d.join("imgs/dark/3.png");
    let mut g = image::open(&img).unwrap().to_luma8();
    g.put_pixel(0, 0, image::Luma([99]));
    g.save(&img).unwrap();
    let out = run(d, &["resume", "artifacts/f", "--quiet"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("differs"), "{}", text(&out));
}
