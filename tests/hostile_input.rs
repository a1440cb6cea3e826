//! Crafted and oversized input: every case ends with a clear error and exit status 2 (no panic,
//! no abort), and nothing half-made is left behind.

mod common;

use std::path::{Path, PathBuf};

use common::{run, text};
use fovea::data::idx;
use fovea::train::checkpoint::{self, CheckpointMeta};

/// Runs fovea in `dir` and expects exit 2 with every one of `wants` in its output.
fn refused(dir: &Path, args: &[&str], wants: &[&str]) -> String {
    let out = run(dir, args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?} should exit 2: {t}");
    for w in wants {
        assert!(t.contains(w), "{args:?} should mention {w:?}: {t}");
    }
    assert!(!t.contains("panicked"), "{t}");
    t
}

/// A Fashion-MNIST folder whose training images file is `images`.
fn idx_dataset(dir: &Path, images: Vec<u8>) -> PathBuf {
    let root = dir.join("fmnist");
    std::fs::create_dir_all(&root).unwrap();
    let good = idx::encode(&[4, 28, 28], &[0; 4 * 28 * 28]);
    let labels = idx::encode(&[4], &[0, 1, 2, 3]);
    std::fs::write(root.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(root.join("train-labels-idx1-ubyte"), &labels).unwrap();
    std::fs::write(root.join("t10k-images-idx3-ubyte"), good).unwrap();
    std::fs::write(root.join("t10k-labels-idx1-ubyte"), labels).unwrap();
    root
}

fn no_run_folder(dir: &Path) {
    let runs: Vec<_> = std::fs::read_dir(dir.join("artifacts"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(runs.is_empty(), "a refused start left {runs:?}");
}

#[test]
fn an_idx_file_with_an_empty_image_dimension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = idx_dataset(dir.path(), idx::encode(&[4, 0, 28], &[]));
    let d = data.to_str().unwrap();
    let args = ["--set", "data.dataset=fashion-mnist", "--data-dir", d];
    refused(
        dir.path(),
        &[&["train"][..], &args].concat(),
        &["train-images-idx3-ubyte", "dimension 1 of [4, 0, 28] is 0"],
    );
    no_run_folder(dir.path());
}

#[test]
fn a_gzip_bomb_behind_a_valid_header_is_refused_without_inflating_it() {
    let dir = tempfile::tempdir().unwrap();
    // 4 images of 28 × 28 declared, 256 MiB of zeros behind them (256 KiB gzipped).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut body = idx::encode(&[4, 28, 28], &[0; 4 * 28 * 28]);
    body.resize(body.len() + (1 << 20), 0);
    std::io::Write::write_all(&mut gz, &body).unwrap();
    for _ in 0..255 {
        std::io::Write::write_all(&mut gz, &[0u8; 1 << 20]).unwrap();
    }
    let data = idx_dataset(dir.path(), Vec::new());
    std::fs::remove_file(data.join("train-images-idx3-ubyte")).unwrap();
    std::fs::write(
        data.join("train-images-idx3-ubyte.gz"),
        gz.finish().unwrap(),
    )
    .unwrap();
    let d = data.to_str().unwrap();
    let start = std::time::Instant::now();
    let train = [
        "train",
        "--set",
        "data.dataset=fashion-mnist",
        "--data-dir",
        d,
    ];
    let info = [
        "data",
        "info",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        d,
    ];
    for args in [&train[..], &info[..]] {
        refused(
            dir.path(),
            args,
            &["train-images-idx3-ubyte.gz", "trailing data"],
        );
    }
    // Inflating all of it would take seconds; reading one byte past the header's size does not.
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    no_run_folder(dir.path());
}

#[test]
fn an_oversized_image_size_or_model_is_refused_before_a_run_folder_exists() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("images");
    for class in ["a", "b"] {
        common::image_class(&folder.join(class), 3, 8, 0);
    }
    let path = format!("data.path={}", folder.display());
    for size in ["100000", "4294967296"] {
        let set = format!("data.image_size={size}");
        refused(
            dir.path(),
            &[
                "train",
                "--set",
                "data.dataset=folder",
                "--set",
                &path,
                "--set",
                &set,
            ],
            &["data.image_size", "4096"],
        );
    }
    refused(
        dir.path(),
        &["train", "--set", "model.hidden=[4000000000]"],
        &["model.hidden", "this machine has"],
    );
    refused(
        dir.path(),
        &["train", "--set", "train.batch_size=1000000000"],
        &["train.batch_size", "this machine has"],
    );
    refused(
        dir.path(),
        &["train", "--set", "train.eval_batch_size=1000000000"],
        &["train.eval_batch_size", "this machine has"],
    );
    no_run_folder(dir.path());
}

#[test]
fn an_image_too_large_to_decode_is_refused_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    // 5000 × 5000 pixels of one grey: a few kB as a PNG.
    let big = dir.path().join("big.png");
    image::GrayImage::new(5000, 5000).save(&big).unwrap();
    refused(
        dir.path(),
        &[
            "damage",
            big.to_str().unwrap(),
            "--kind",
            "noise",
            "--out",
            "damaged",
        ],
        &["big.png", "4096"],
    );
    assert!(!dir.path().join("damaged").exists());
}

/// A one-epoch run on the built-in sample, `artifacts/r` in `d`.
fn small_run(d: &Path) -> PathBuf {
    let out = common::train(d, "r", &["--set", "train.epochs=1"]);
    assert!(out.status.success(), "{}", text(&out));
    d.join("artifacts/r")
}

/// Rewrites every checkpoint of a run through `edit`, sealed again with a valid checksum.
fn reseal(run: &Path, edit: impl Fn(&mut CheckpointMeta)) {
    for entry in std::fs::read_dir(run.join("checkpoints")).unwrap() {
        let path = entry.unwrap().path();
        let (mut meta, parts) = checkpoint::read::<CheckpointMeta>(&path).unwrap();
        edit(&mut meta);
        std::fs::write(&path, checkpoint::encode(&meta, &parts).unwrap()).unwrap();
    }
}

#[test]
fn checkpoint_metadata_that_does_not_fit_the_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run_dir = small_run(d);
    let png = d.join("x.png");
    image::GrayImage::new(28, 28).save(&png).unwrap();
    let (r, x) = (run_dir.to_str().unwrap(), png.to_str().unwrap());

    // A normalizer for three channels in a grayscale run.
    reseal(&run_dir, |m| {
        m.normalizer.mean = vec![0.5; 3];
        m.normalizer.std = vec![0.5; 3];
    });
    for args in [&["predict", r, x][..], &["eval", r]] {
        refused(d, args, &["checkpoint", "3 means", "1 channel"]);
    }
    // No classes.
    reseal(&run_dir, |m| {
        m.normalizer.mean.truncate(1);
        m.normalizer.std.truncate(1);
        m.classes.clear();
    });
    refused(d, &["predict", r, x], &["lists no classes"]);
}

#[test]
fn a_sealed_checkpoint_with_a_huge_part_count_falls_back_to_an_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ckpts = small_run(d).join("checkpoints");
    let newest = &checkpoint::list(&ckpts).unwrap()[0].1;
    // The part count (after the magic, the version, the meta length and the meta) set to
    // FF FF FF FF, and the file sealed again with a valid SHA-256.
    let mut bytes = std::fs::read(newest).unwrap();
    bytes.truncate(bytes.len() - 32);
    let meta_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let at = 20 + meta_len;
    bytes[at..at + 4].copy_from_slice(&[0xff; 4]);
    std::fs::write(newest, checkpoint::seal(bytes)).unwrap();

    let out = run(d, &["eval", "artifacts/r", "--checkpoint", "last"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("declares 4294967295 parts") && t.contains("falling back"),
        "{t}"
    );
}

#[test]
fn compare_refuses_to_reuse_a_run_after_its_image_folder_gained_a_class() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let images = d.join("images");
    let add_class = |class: &str, shade: u8| common::image_class(&images.join(class), 12, 8, shade);
    add_class("dark", 10);
    add_class("light", 200);
    let file = format!(
        "title = \"t\"\nset = [\"data.dataset=\\\"folder\\\"\", \"data.path=\\\"{}\\\"\", \
         \"data.val_fraction=0.0\"]\n[[model]]\nname = \"svm\"\nconfig = \"{}/config/svm-pixels.toml\"\n\
         set = [\"train.epochs=1\", \"train.batch_size=4\"]\n",
        images.display(),
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::write(d.join("cmp.toml"), file).unwrap();
    let args = ["compare", "--config", "cmp.toml", "--quiet"];
    let first = run(d, &args);
    assert!(first.status.success(), "{}", text(&first));
    add_class("grey", 100);
    let t = refused(d, &args, &["3 classes", "2 classes"]);
    assert!(t.contains("move the run away"), "{t}");
}
