//! Bad input at the command line: exit status 2 and a message naming the file, key or value.
//! Nothing already saved is touched.

mod common;

use common::{run, text};

fn fails_with(args: &[&str], wants: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("typo.toml"), "[train]\nepochz = 3\n").unwrap();
    let out = run(dir.path(), args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?} should exit 2: {t}");
    for w in wants {
        assert!(t.contains(w), "{args:?} should mention {w:?}: {t}");
    }
    assert!(!t.contains("panicked"), "{t}");
    assert!(
        !dir.path().join("artifacts").exists(),
        "a failed start must not leave a run folder"
    );
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    fails_with(&["train", "--config", "missing.toml"], &["missing.toml"]);
    fails_with(
        &["train", "--config", "typo.toml"],
        &["typo.toml", "epochz"],
    );
    fails_with(
        &["train", "--set", "train.batch_size=0"],
        &["train.batch_size"],
    );
    fails_with(&["train", "--set", "train.lr=-1"], &["train.lr"]);
    fails_with(
        &["train", "--set", "model.kind=transformer"],
        &["transformer"],
    );
    fails_with(&["train", "--backend", "tpu"], &["tpu"]);
    fails_with(
        &["train", "--set", "data.dataset=mnist"],
        &["mnist", "fovea data download mnist"],
    );
    fails_with(&["train", "--set", "data.dataset=folder"], &["data.path"]);
    let five_pools =
        "model.blocks=[{channels=4},{channels=4},{channels=4},{channels=4},{channels=4}]";
    fails_with(
        &["train", "--set", five_pools],
        &["model.blocks[4]", "pooling"],
    );
    fails_with(&["resume", "nowhere"], &["nowhere"]);
    fails_with(&["eval", "nowhere"], &["nowhere"]);
    fails_with(&["predict", "nowhere", "x.png"], &["nowhere"]);
    fails_with(&["data", "info", "--dataset", "imagenet"], &["imagenet"]);
    fails_with(&["data", "download", "imagenet"], &["imagenet"]);
}

#[test]
fn an_existing_run_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("artifacts/keep")).unwrap();
    std::fs::write(d.join("artifacts/keep/config.toml"), "seed = 1\n").unwrap();
    let out = run(
        d,
        &[
            "train",
            "--name",
            "keep",
            "--set",
            "train.epochs=1",
            "--set",
            "data.train_limit=64",
            "--quiet",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("fovea resume"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(d.join("artifacts/keep/config.toml")).unwrap(),
        "seed = 1\n"
    );
}

#[test]
fn devices_says_what_each_backend_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["devices"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    let line = |b: &str| {
        t.lines()
            .find(|l| l.starts_with(b))
            .unwrap_or_else(|| panic!("no line for {b}: {t}"))
            .to_string()
    };
    let threads = std::thread::available_parallelism().unwrap().get();
    for b in ["flex", "ndarray"] {
        assert!(
            line(b).contains(&format!("available: CPU, {threads} threads")),
            "{t}"
        );
    }
    // CI installs a software Vulkan driver and requires the GPU backend to be found.
    let wgpu = line("wgpu");
    if std::env::var_os("FOVEA_REQUIRE_WGPU").is_some() {
        assert!(
            wgpu.contains(" available: ") && !wgpu.contains("unavailable"),
            "{t}"
        );
    } else {
        assert!(wgpu.contains("available: "), "{t}");
    }
}
