//! Helpers shared by the binary-level tests: run the real `fovea` binary in a temp folder.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn fovea(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fovea"));
    c.current_dir(dir);
    // Keep the tests independent of datasets installed on the machine and of the user's cache.
    c.env("FOVEA_DATA", dir.join("no-datasets-here"));
    c.env("XDG_CACHE_HOME", dir.join("cache"));
    c
}

pub fn run(dir: &Path, args: &[&str]) -> Output {
    fovea(dir).args(args).output().expect("fovea runs")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A small, fast training setup on the built-in sample: 320 training images in batches of 32
/// (10 steps per epoch), 200 validation and 100 test images.
pub const SMALL: &[&str] = &[
    "--set",
    "data.train_limit=320",
    "--set",
    "data.val_fraction=0.02",
    "--set",
    "data.test_limit=100",
    "--set",
    "train.batch_size=32",
    "--set",
    "train.checkpoint_every=3",
    "--set",
    "train.log_every=2",
    "--set",
    "train.keep_last=20",
    "--quiet",
];

/// The arguments that train the shipped config `config/<file>` on the built-in sample, with
/// `sets` as `--set` overrides (shrinking it to a test's size).
pub fn on_sample(file: &str, sets: &[&'static str]) -> Vec<&'static str> {
    let path = format!("{}/config/{file}", env!("CARGO_MANIFEST_DIR"));
    // one short string per call, for the test's lifetime
    let mut args = vec![
        "--config",
        String::leak(path),
        "--set",
        "data.dataset=sample",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    args
}

pub fn train(dir: &Path, name: &str, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--name", name];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    run(dir, &args)
}

/// A class folder of an image dataset: `n` grayscale PNGs `0.png`, `1.png`, … of `side` ×
/// `side` pixels, image i of one shade, `shade + i`.
pub fn image_class(dir: &Path, n: u8, side: u32, shade: u8) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        image::GrayImage::from_pixel(side, side, image::Luma([shade + i]))
            .save(dir.join(format!("{i}.png")))
            .unwrap();
    }
}

/// Trains `setup` as the run `name`, stopped as `kill -9` would stop it right after step `at`
/// (exit status 137), then resumes it to its end; returns the crashed run's output and the
/// run folder.
pub fn crash_then_resume(
    dir: &Path,
    name: &str,
    setup: &[&str],
    at: &str,
) -> (Output, std::path::PathBuf) {
    let crashed = train(dir, name, &[setup, &["--crash-at-step", at]].concat());
    assert_eq!(crashed.status.code(), Some(137), "{}", text(&crashed));
    let folder = format!("artifacts/{name}");
    let resumed = run(dir, &["resume", &folder, "--quiet"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    (crashed, dir.join(folder))
}

/// The newest intact checkpoint of a run: its metadata and parts.
pub fn newest_checkpoint(
    run_dir: &Path,
) -> (fovea::train::CheckpointMeta, Vec<fovea::train::Part>) {
    let (_, meta, parts) = fovea::train::checkpoint::newest_intact::<fovea::train::CheckpointMeta>(
        &run_dir.join("checkpoints"),
    )
    .unwrap()
    .unwrap();
    (meta, parts)
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The metrics a run logged, one line per record, without the timing fields (which differ
/// between processes): what an exact resume must reproduce.
pub fn logged(run_dir: &Path) -> Vec<String> {
    fovea::run_files::read_metrics(run_dir)
        .unwrap()
        .into_iter()
        .map(|r| {
            format!(
                "{} {} {} {} {:?}",
                r.epoch, r.step, r.split, r.scope, r.values
            )
        })
        .collect()
}
