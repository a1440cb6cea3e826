//! The real binary trains, writes every artifact, resumes exactly after a crash or kill -9,
//! falls back from a corrupt checkpoint, refuses a locked run, evaluates and predicts.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{crash_then_resume, read_json, run, text, train};

/// Final weights of a run's last checkpoint, as floats.
fn final_weights(run_dir: &Path) -> Vec<f32> {
    let loaded = fovea::commands::runs::load_run(run_dir, "last", None).unwrap();
    fovea::models::flat_params(&loaded.model)
}

/// The metrics a run logged, without the timing fields (which differ between processes).
fn logged(run_dir: &Path) -> Vec<(usize, u64, String, String, String, String)> {
    fovea::run_files::read_metrics(run_dir)
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.epoch,
                r.step,
                r.split.clone(),
                r.scope.clone(),
                format!("{:?}", r.get("loss").unwrap()),
                format!("{:?}", r.get("accuracy").unwrap()),
            )
        })
        .collect()
}

#[test]
fn one_epoch_writes_every_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let out = train(dir.path(), "one", &["--set", "train.epochs=1"]);
    assert!(out.status.success(), "{}", text(&out));
    let run_dir = dir.path().join("artifacts/one");
    for f in [
        "config.toml",
        "run.json",
        "metrics.jsonl",
        "metrics.csv",
        "summary.json",
        "loss.png",
        "accuracy.png",
        "confusion.png",
        "checkpoints/best.ckpt",
    ] {
        assert!(run_dir.join(f).is_file(), "missing {f}");
    }
    let summary = read_json(&run_dir.join("summary.json"));
    let acc = summary["test_accuracy"].as_f64().unwrap();
    assert!(
        acc > 0.3,
        "one epoch on 320 images should beat chance (0.1) clearly: {acc}"
    );
    assert_eq!(summary["test_count"], 100);
    assert_eq!(summary["confusion_matrix"].as_array().unwrap().len(), 10);
    assert!(summary["parameter_count"].as_u64().unwrap() > 100_000);
    let info = read_json(&run_dir.join("run.json"));
    assert_eq!(info["status"], "completed");
    assert_eq!(info["backend"], "flex");
    assert_eq!(info["data"]["train"], 320);
    assert!(
        info["data"]["origin"]
            .as_str()
            .unwrap()
            .contains("built-in sample")
    );
    let csv = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    // the saved config is complete and loads again
    let saved = std::fs::read_to_string(run_dir.join("config.toml")).unwrap();
    let c = fovea::config::from_str(&saved, "saved").unwrap();
    assert_eq!(c.data.train_limit, 320);
    // PNGs are real images
    let img = image::open(run_dir.join("loss.png")).unwrap();
    assert!(img.width() > 400);
}

/// Trains `model` straight and with a crash after step 8 then `resume`; both must end alike.
fn crash_and_resume_matches_straight(model: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = [&["--set", "train.epochs=2"][..], model].concat();
    let straight = train(d, "straight", &setup);
    assert!(straight.status.success(), "{}", text(&straight));

    // Crash (no clean-up, no final checkpoint) after step 8; the newest checkpoint is step 6.
    crash_then_resume(d, "crashed", &setup, "8");

    let (a, b) = (d.join("artifacts/straight"), d.join("artifacts/crashed"));
    assert_eq!(
        final_weights(&a),
        final_weights(&b),
        "weights differ after resume"
    );
    let (sa, sb) = (
        read_json(&a.join("summary.json")),
        read_json(&b.join("summary.json")),
    );
    assert_eq!(sa["test_accuracy"], sb["test_accuracy"]);
    assert_eq!(sa["test_loss"], sb["test_loss"]);
    assert_eq!(sa["confusion_matrix"], sb["confusion_matrix"]);
    // A spiking model's early decisions and firing (null for other kinds).
    assert_eq!(sa["early_decision"], sb["early_decision"]);
    assert_eq!(sa["firing"], sb["firing"]);
    assert_eq!(logged(&a), logged(&b), "metrics.jsonl differs after resume");
    assert_eq!(
        read_json(&b.join("run.json"))["resumes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn resume_after_a_crash_reproduces_the_uninterrupted_run() {
    crash_and_resume_matches_straight(&[]);
}

#[test]
fn a_sequence_model_resumes_exactly_too() {
    // GRU with dropout between its two layers: the dropout masks must repeat after resume.
    crash_and_resume_matches_straight(&[
        "--set",
        "model.kind=rnn",
        "--set",
        "model.cell=gru",
        "--set",
        "model.hidden=32",
        "--set",
        "model.dropout=0.3",
    ]);
}

#[test]
fn resume_is_exact_with_augmentation_on() {
    // Shifts and flips are drawn per (seed, epoch, batch): the resumed run draws the same.
    crash_and_resume_matches_straight(&[
        "--set",
        "data.augment.shift=2",
        "--set",
        "data.augment.flip=true",
    ]);
}

#[test]
fn the_cnn_rnn_hybrid_resumes_exactly() {
    crash_and_resume_matches_straight(&[
        "--set",
        "model.kind=cnn-rnn",
        "--set",
        "model.hidden=16",
        "--set",
        "model.blocks=[{channels=8},{channels=16,dropout=0.2}]",
    ]);
}

#[test]
fn the_spiking_model_resumes_exactly_with_poisson_coding() {
    // Poisson spikes and dropout draw from the device RNG: the resumed run must draw the same.
    crash_and_resume_matches_straight(&[
        "--set",
        "model.kind=cnn-lif",
        "--set",
        "model.coding=poisson",
        "--set",
        "model.hidden=[16]",
        "--set",
        "model.steps=4",
        "--set",
        "model.neuron.refractory=1",
        "--set",
        "model.blocks=[{channels=8},{channels=16}]",
    ]);
}

#[test]
fn every_model_config_trains_one_epoch_on_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    for cfg in ["cnn", "rnn", "cnn-rnn"] {
        let path = format!("{}/config/{cfg}.toml", env!("CARGO_MANIFEST_DIR"));
        let out = train(
            dir.path(),
            cfg,
            &[
                "--config",
                &path,
                "--set",
                "data.dataset=sample",
                "--set",
                "train.epochs=1",
            ],
        );
        assert!(out.status.success(), "{cfg}: {}", text(&out));
        let run_dir = dir.path().join("artifacts").join(cfg);
        for f in [
            "summary.json",
            "metrics.csv",
            "loss.png",
            "accuracy.png",
            "confusion.png",
            "checkpoints/best.ckpt",
        ] {
            assert!(run_dir.join(f).is_file(), "{cfg}: missing {f}");
        }
        let s = read_json(&run_dir.join("summary.json"));
        // Ten steps of 32 images: cnn-rnn's accuracy spans 0.25–0.44 over seeds (chance 0.1),
        // so the bar is twice chance.
        assert!(s["test_accuracy"].as_f64().unwrap() > 0.2, "{cfg}: {s}");
        assert_eq!(read_json(&run_dir.join("run.json"))["status"], "completed");
    }
}

/// Waits (two minutes at most) until a running training has written `n` checkpoints.
fn wait_for_checkpoints(ckpts: &Path, n: usize) {
    let start = Instant::now();
    while fovea::train::checkpoint::list(ckpts)
        .map(|l| l.len())
        .unwrap_or(0)
        < n
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn resume_after_kill_9_at_an_arbitrary_moment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = ["--set", "train.epochs=3", "--set", "data.train_limit=640"];
    let straight = train(d, "straight", &setup);
    assert!(straight.status.success(), "{}", text(&straight));

    let mut args = vec!["train", "--name", "killed"];
    args.extend_from_slice(common::SMALL);
    args.extend_from_slice(&setup);
    let mut child = common::fovea(d).args(&args).spawn().unwrap();
    wait_for_checkpoints(&d.join("artifacts/killed/checkpoints"), 2);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    // Killed mid-run, not finished before the kill came.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the run ended before it was killed: {status:?}"
    );
    assert_eq!(
        read_json(&d.join("artifacts/killed/run.json"))["status"],
        "running"
    );
    let resumed = run(d, &["resume", "artifacts/killed", "--quiet"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    eprintln!("killed run exited with {status:?}; resumed");
    let (a, b) = (d.join("artifacts/straight"), d.join("artifacts/killed"));
    assert_eq!(final_weights(&a), final_weights(&b));
    assert_eq!(
        read_json(&a.join("summary.json"))["test_loss"],
        read_json(&b.join("summary.json"))["test_loss"]
    );
}

#[test]
fn corrupt_checkpoint_falls_back_to_the_newest_intact_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let crashed = train(d, "c", &["--set", "train.epochs=1", "--crash-at-step", "7"]);
    assert_eq!(crashed.status.code(), Some(137), "{}", text(&crashed));
    let ckpts = d.join("artifacts/c/checkpoints");
    let list = fovea::train::checkpoint::list(&ckpts).unwrap();
    assert_eq!(list[0].0, 6);
    let mut bytes = std::fs::read(&list[0].1).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&list[0].1, &bytes).unwrap();
    let resumed = run(d, &["resume", "artifacts/c"]);
    let t = text(&resumed);
    assert!(resumed.status.success(), "{t}");
    assert!(
        t.contains("checksum mismatch")
            && t.contains("falling back")
            && t.contains("step-000000003"),
        "{t}"
    );

    // A run whose every checkpoint is corrupt says so.
    for (_, p) in fovea::train::checkpoint::list(&ckpts).unwrap() {
        std::fs::write(&p, b"garbage").unwrap();
    }
    let out = run(d, &["resume", "artifacts/c"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("corrupt"), "{}", text(&out));
}

#[test]
fn a_locked_run_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let crashed = train(d, "l", &["--set", "train.epochs=1", "--crash-at-step", "4"]);
    assert_eq!(crashed.status.code(), Some(137));
    let _held = fovea::train::run::Run::open(&d.join("artifacts/l")).unwrap();
    let out = run(d, &["resume", "artifacts/l"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("another fovea process"),
        "{}",
        text(&out)
    );
}

#[test]
fn eval_and_predict_read_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = train(d, "e", &["--set", "train.epochs=1"]);
    assert!(out.status.success(), "{}", text(&out));
    let summary = read_json(&d.join("artifacts/e/summary.json"));

    let out = run(
        d,
        &["eval", "artifacts/e", "--checkpoint", "last", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["test_accuracy"], summary["test_accuracy"]);

    // A sample image written as PNG, and a colour JPEG of another size: both are converted.
    let raw = fovea::data::sources::sample().unwrap();
    let img = image::GrayImage::from_raw(28, 28, raw.test.image(0).to_vec()).unwrap();
    img.save(d.join("item.png")).unwrap();
    image::DynamicImage::ImageLuma8(img)
        .resize_exact(56, 40, image::imageops::FilterType::Triangle)
        .to_rgb8()
        .save(d.join("item.jpg"))
        .unwrap();
    let out = run(
        d,
        &[
            "predict",
            "artifacts/e",
            "item.png",
            "item.jpg",
            "--json",
            "-k",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p.as_array().unwrap().len(), 2);
    let top = p[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    assert!(top[0][1].as_f64().unwrap() >= top[1][1].as_f64().unwrap());

    std::fs::write(d.join("fake.png"), b"no image").unwrap();
    let out = run(d, &["predict", "artifacts/e", "fake.png"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("fake.png"), "{}", text(&out));

    let out = run(
        d,
        &["predict", "artifacts/e", "item.png", "--exit-margin", "0.5"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("spiking models"), "{}", text(&out));

    let out = run(d, &["eval", "artifacts/e", "--checkpoint", "99999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("no checkpoint at step 99999"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_colour_dataset_trains_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let batches = d.join("cifar/cifar-10-batches-bin");
    std::fs::create_dir_all(&batches).unwrap();
    let set = |n: usize, off: usize| {
        let labels: Vec<u32> = (0..n).map(|i| ((i + off) % 10) as u32).collect();
        // each class gets its own brightness, so the task is learnable
        let images = labels
            .iter()
            .flat_map(|&y| std::iter::repeat_n((y * 25) as u8, 3072))
            .collect();
        fovea::data::ImageSet::new(fovea::data::cifar::SHAPE, images, labels).unwrap()
    };
    for f in fovea::data::cifar::TRAIN_FILES {
        std::fs::write(batches.join(f), fovea::data::cifar::encode(&set(20, 0))).unwrap();
    }
    std::fs::write(
        batches.join(fovea::data::cifar::TEST_FILE),
        fovea::data::cifar::encode(&set(20, 3)),
    )
    .unwrap();
    for kind in ["cnn", "rnn", "cnn-rnn"] {
        let name = format!("cifar-{kind}");
        let kind_set = format!("model.kind={kind}");
        let args = [
            "train",
            "--name",
            &name,
            "--set",
            "data.dataset=cifar10",
            "--data-dir",
            "cifar",
            "--set",
            &kind_set,
            "--set",
            "train.epochs=1",
            "--set",
            "train.batch_size=16",
            "--quiet",
        ];
        let out = run(d, &args);
        assert!(out.status.success(), "{kind}: {}", text(&out));
        let info = read_json(&d.join("artifacts").join(&name).join("run.json"));
        assert_eq!(info["data"]["shape"]["channels"], 3);
        assert_eq!(info["data"]["files"].as_array().unwrap().len(), 6);
    }
}

#[test]
fn a_diverging_run_stops_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = train(
        d,
        "nan",
        &[
            "--set",
            "train.epochs=1",
            "--set",
            "train.optimizer=sgd",
            "--set",
            "train.momentum=0",
            "--set",
            "train.lr=1e30",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("loss became") && t.contains("train.lr"), "{t}");
    let info = read_json(&d.join("artifacts/nan/run.json"));
    assert!(
        info["status"]
            .as_str()
            .unwrap()
            .starts_with("failed: loss became"),
        "{info}"
    );
}

/// Ctrl-C (SIGINT) and SIGTERM (docker stop, systemd, timeout) both stop a run after a
/// checkpoint of its own, and resume from it ends where the uninterrupted run ends.
#[test]
fn ctrl_c_and_sigterm_checkpoint_mid_epoch_and_resume_matches_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = [
        "--set",
        "train.epochs=6",
        "--set",
        "train.checkpoint_every=0",
    ];
    let straight = train(d, "straight", &setup);
    assert!(straight.status.success(), "{}", text(&straight));

    for signal in ["INT", "TERM"] {
        let name = format!("int-{signal}");
        let mut args = vec!["train", "--name", &name];
        args.extend_from_slice(common::SMALL);
        args.extend_from_slice(&setup);
        let mut child = common::fovea(d).args(&args).spawn().unwrap();
        // Wait until training runs (the first epoch's checkpoint exists), then signal.
        let ckpts = d.join(format!("artifacts/{name}/checkpoints"));
        wait_for_checkpoints(&ckpts, 1);
        std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(130),
            "SIG{signal} did not interrupt the run"
        );
        let run_dir = d.join(format!("artifacts/{name}"));
        assert_eq!(
            read_json(&run_dir.join("run.json"))["status"],
            "interrupted"
        );
        // The interrupt wrote a checkpoint of its own, in mid-epoch (epoch checkpoints have
        // batch 0).
        let newest = &fovea::train::checkpoint::list(&ckpts).unwrap()[0].1;
        let (meta, _): (serde_json::Value, _) = fovea::train::checkpoint::read(newest).unwrap();
        assert!(
            meta["state"]["batch"].as_u64().unwrap() > 0,
            "SIG{signal}: {meta}"
        );

        let resumed = run(d, &["resume", run_dir.to_str().unwrap(), "--quiet"]);
        assert!(resumed.status.success(), "{}", text(&resumed));
        let a = d.join("artifacts/straight");
        assert_eq!(read_json(&run_dir.join("run.json"))["status"], "completed");
        assert_eq!(read_json(&run_dir.join("summary.json"))["steps"], 60);
        assert_eq!(
            final_weights(&a),
            final_weights(&run_dir),
            "SIG{signal}: weights differ after resume"
        );
        assert_eq!(
            logged(&a),
            logged(&run_dir),
            "SIG{signal}: metrics.jsonl differs after resume"
        );
    }
}

#[test]
fn bench_measures_and_writes_bench_json() {
    let dir = tempfile::tempdir().unwrap();
    let bench = |name: &str, repeats: &str, set: &[&str]| {
        let mut args = vec![
            "bench",
            "--steps",
            "2",
            "--repeats",
            repeats,
            "--warmup",
            "1",
            "--name",
            name,
        ];
        for s in set {
            args.extend(["--set", s]);
        }
        let out = run(dir.path(), &args);
        assert!(out.status.success(), "{}", text(&out));
        let t = text(&out);
        assert!(t.contains("train img/s") && t.contains("bench.json"), "{t}");
        let file = read_json(&dir.path().join("artifacts").join(name).join("bench.json"));
        assert_eq!(file["results"].as_array().unwrap().len(), 1, "{file}");
        file["results"][0].clone()
    };
    let b = bench("b", "2", &["train.batch_size=16"]);
    // latency of one image: median ≤ p95; the reference CNN's counted work and achieved rate
    let (p50, p95) = (
        b["latency_ms_median"].as_f64().unwrap(),
        b["latency_ms_p95"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p95, "{b}");
    let macs = 9 * 32 * 784 + 32 * 9 * 64 * 196 + 3136 * 128 + 128 * 10;
    assert_eq!(b["forward_macs_per_image"], macs);
    let gflops = b["train_images_per_sec"].as_f64().unwrap() * macs as f64 * 6.0 / 1e9;
    assert!(
        (b["train_gflops"].as_f64().unwrap() - gflops).abs() < 1e-6 * gflops,
        "{b}"
    );
    assert_eq!(b["model"], "cnn");
    assert_eq!(b["backend"], "flex");
    assert_eq!(b["batch_size"], 16);
    assert_eq!(b["parameters"], 421_930);
    assert_eq!(b["train_rounds"].as_array().unwrap().len(), 2);
    for key in ["train_images_per_sec", "infer_images_per_sec"] {
        assert!(b[key].as_f64().unwrap() > 1.0, "{key}: {b}");
    }
    // the reported figure is the median of the rounds
    let rounds: Vec<f64> = b["infer_rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        rounds.contains(&b["infer_images_per_sec"].as_f64().unwrap()),
        "{b}"
    );

    // Every kind is benched the same way, the spiking one included.
    let b = bench("lif", "1", &["model.kind=cnn-lif", "train.batch_size=8"]);
    assert_eq!(b["model"], "cnn-lif");
    assert_eq!(b["parameters"], 50_474);
    assert!(b["train_images_per_sec"].as_f64().unwrap() > 1.0, "{b}");
    // The GAN: one image = a discriminator step and a generator step.
    let b = bench(
        "gan",
        "1",
        &[
            "model.kind=gan",
            "model.g_channels=8",
            "model.d_channels=8",
            "eval.judge_epochs=1",
            "eval.fid_samples=40",
            "data.train_limit=320",
            "train.batch_size=8",
        ],
    );
    assert_eq!(b["model"], "gan");
    assert!(b["train_images_per_sec"].as_f64().unwrap() > 1.0, "{b}");
    assert!(b["infer_images_per_sec"].as_f64().unwrap() > 1.0, "{b}");
    // An SVM on HOG features (computed inside the forward pass).
    let b = bench(
        "svm",
        "1",
        &[
            "model.kind=svm",
            "model.features=\"hog\"",
            "train.batch_size=8",
        ],
    );
    assert_eq!(b["model"], "svm");
    assert!(b["train_images_per_sec"].as_f64().unwrap() > 1.0, "{b}");
    // Restoration: one image = its damage, the discriminator's and the generator's step.
    let b = bench(
        "restore",
        "1",
        &[
            "model.kind=restore",
            "model.damage.noise=0.3",
            "model.channels=4",
            "eval.judge_epochs=1",
            "data.train_limit=320",
            "train.batch_size=8",
        ],
    );
    assert_eq!(b["model"], "restore");
    assert!(b["train_images_per_sec"].as_f64().unwrap() > 1.0, "{b}");
    assert!(b["infer_images_per_sec"].as_f64().unwrap() > 1.0, "{b}");
    // The exact kernel SVM: a training round is one whole fit of its subset.
    let b = bench(
        "kernel-svm",
        "1",
        &["model.kind=kernel-svm", "model.subset=200"],
    );
    assert_eq!(b["model"], "kernel-svm");
    // 200 support rows of 784 pixels, α for 10 classes, 10 biases, γ
    assert_eq!(b["parameters"], 200 * 784 + 200 * 10 + 10 + 1);
    assert!(b["train_images_per_sec"].as_f64().unwrap() > 1.0, "{b}");
    assert!(b["infer_images_per_sec"].as_f64().unwrap() > 1.0, "{b}");
}

#[test]
fn bench_kinds_runs_each_kind_in_its_own_process_and_records_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "--kinds",
        "cnn,rnn",
        "--steps",
        "2",
        "--repeats",
        "1",
        "--warmup",
        "1",
        "--latency-runs",
        "5",
        "--loss-steps",
        "3",
        "--name",
        "k",
        "--set",
        "train.batch_size=8",
        "--set",
        "data.train_limit=64",
    ];
    let out = run(dir.path(), &args);
    assert!(out.status.success(), "{}", text(&out));
    let file = read_json(&dir.path().join("artifacts/k/bench.json"));
    let results = file["results"].as_array().unwrap();
    let kinds: Vec<&str> = results
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["cnn", "rnn"]);
    for r in results {
        // three steps from fresh weights, each with its loss (10 classes: about ln 10 at first)
        let curve = r["loss_curve"].as_array().unwrap();
        assert_eq!(curve.len(), 3, "{r}");
        let first = curve[0].as_f64().unwrap();
        assert!((1.0..4.0).contains(&first), "{r}");
        assert!(r["peak_rss_mib"].as_f64().unwrap() > 1.0, "{r}");
    }
    assert_eq!(file["fovea_version"], env!("CARGO_PKG_VERSION"));
    assert!(file["machine"]["threads"].as_u64().unwrap() >= 1, "{file}");
    assert!(file["machine"]["simd"].is_string(), "{file}");

    // an unknown kind is refused by name, before anything runs
    let out = run(dir.path(), &["bench", "--kinds", "cnn,lstm"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("unknown kind `lstm`"), "{}", text(&out));
}

#[test]
fn validation_runs_every_eval_every_epochs_and_after_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let out = train(
        dir.path(),
        "e",
        &[
            "--set",
            "train.epochs=5",
            "--set",
            "train.eval_every=2",
            "--set",
            "data.train_limit=64",
            "--set",
            "model.blocks=[{channels=4}]",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let val: Vec<usize> = fovea::run_files::read_metrics(&dir.path().join("artifacts/e"))
        .unwrap()
        .into_iter()
        .filter(|r| r.split == "val")
        .map(|r| r.epoch)
        .collect();
    assert_eq!(val, [2, 4, 5]);
}

/// The key sets of a classifier run's files, as `tests/fixtures/classifier-run-keys.json` lists
/// them: what a classifier run writes stays what it wrote before tasks were generalized (plus the
/// keys added since, which the fixture's history shows).
#[test]
fn a_classifier_run_writes_the_files_and_keys_it_always_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let out = train(dir.path(), "k", &["--set", "train.epochs=2"]);
    assert!(out.status.success(), "{}", text(&out));
    let run_dir = dir.path().join("artifacts/k");
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let mut files: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| !f.starts_with('.'))
        .collect();
    files.sort();
    let info = read_json(&run_dir.join("run.json"));
    let summary = read_json(&run_dir.join("summary.json"));
    let mut records = std::collections::BTreeMap::<String, Vec<String>>::new();
    for line in std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
    {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind = format!(
            "{}/{}",
            r["split"].as_str().unwrap(),
            r["scope"].as_str().unwrap()
        );
        let entry = records.entry(kind).or_default();
        for k in keys(&r) {
            if !entry.contains(&k) {
                entry.push(k);
            }
        }
        entry.sort();
    }
    let csv = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let got = serde_json::json!({
        "files": files,
        "run.json": keys(&info),
        "run.json data": keys(&info["data"]),
        "summary.json": keys(&summary),
        "summary.json last": keys(&summary["last"]),
        "summary.json best": keys(&summary["best"]),
        "metrics.jsonl": records,
        "metrics.csv": csv.lines().next().unwrap().split(',').collect::<Vec<_>>(),
    });
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/classifier-run-keys.json");
    let want = read_json(&fixture);
    assert_eq!(
        got,
        want,
        "got:\n{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
    assert!(run_dir.join("checkpoints/best.ckpt").is_file());
}
