//! The GAN task through the real binary: the automatic judge, its artifacts and metrics, exact
//! resume of both networks and both optimizers after a crash in mid-epoch.

mod common;

use std::path::Path;

use common::{
    crash_then_resume, logged, newest_checkpoint, on_sample, read_json, run, text, train,
};

/// The names of the newest checkpoint's parts, and the generator's, the discriminator's and the
/// generator's moving average's weights in it (parameter ids differ between processes, so the
/// records are compared by value).
fn newest_weights(run_dir: &Path) -> (Vec<String>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (meta, parts) = newest_checkpoint(run_dir);
    let config = fovea::config::run_config(run_dir).unwrap();
    let fovea::models::ModelConfig::Gan(gan) = &config.model else {
        panic!("not a gan run")
    };
    let device = burn::tensor::Device::flex();
    let (g, d) = gan.init(meta.shape, meta.classes.len(), &device).unwrap();
    let ema = fovea::tasks::records::load_module(g.clone(), &parts, "generator-ema").unwrap();
    let g = fovea::tasks::records::load_module(g, &parts, "generator").unwrap();
    let d = fovea::tasks::records::load_module(d, &parts, "discriminator").unwrap();
    (
        parts.into_iter().map(|p| p.0).collect(),
        fovea::models::flat_params(&g),
        fovea::models::flat_params(&d),
        fovea::models::flat_params(&ema),
    )
}

#[test]
fn a_gan_trains_with_its_own_judge_and_resumes_exactly_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = on_sample(
        "gan.toml",
        &[
            "train.epochs=2",
            "model.g_channels=8",
            "model.d_channels=8",
            "eval.fid_samples=60",
            "eval.judge_epochs=1",
        ],
    );
    let straight = train(d, "straight", &setup);
    assert!(straight.status.success(), "{}", text(&straight));
    assert!(
        text(&straight).contains("training the reference CNN"),
        "{}",
        text(&straight)
    );
    let a = d.join("artifacts/straight");
    let s = read_json(&a.join("summary.json"));
    for key in ["test_fid", "test_fid_floor", "test_gan_test"] {
        assert!(s[key].as_f64().is_some(), "{key}: {s}");
    }
    assert!(s["judge"].as_str().unwrap().contains("judges"), "{s}");
    // GAN-train: a CNN trained on generated images alone, in the GAN's run folder.
    let gan_train = read_json(&d.join("artifacts/straight/gan-train/summary.json"));
    assert_eq!(s["test_gan_train"], gan_train["test_accuracy"], "{s}");
    let gan_train_run = read_json(&d.join("artifacts/straight/gan-train/run.json"));
    assert_eq!(gan_train_run["data"]["synthetic"]["real"], 0);
    assert_eq!(
        gan_train_run["data"]["synthetic"]["images"],
        gan_train_run["data"]["train"]
    );
    for f in [
        "samples.png",
        "samples/epoch-001.png",
        "samples/epoch-002.png",
        "fid.png",
        "gan-loss.png",
    ] {
        assert!(a.join(f).is_file(), "missing {f}");
    }
    let grid = image::open(a.join("samples.png")).unwrap();
    assert!(
        grid.height() > 10 * 56,
        "one row per class: {}",
        grid.height()
    );

    // The second run reuses the cached judge, crashes in mid-epoch and resumes.
    let (crashed, b) = crash_then_resume(d, "crashed", &setup, "8");
    assert!(text(&crashed).contains("reusing"), "{}", text(&crashed));
    let (wa, wb) = (newest_weights(&a), newest_weights(&b));
    assert_eq!(
        wa.0,
        [
            "generator",
            "discriminator",
            "optim_g",
            "optim_d",
            "generator-ema"
        ]
    );
    // Equal weights after the steps that followed the resume: the optimizers' states matched too.
    assert_eq!(wa.1, wb.1, "the generator differs after resume");
    assert_eq!(wa.2, wb.2, "the discriminator differs after resume");
    assert_eq!(
        wa.3, wb.3,
        "the generator's moving average differs after resume"
    );
    assert_ne!(wa.1, wa.3, "the moving average is the generator itself");
    assert_eq!(logged(&a), logged(&b), "metrics.jsonl differs after resume");
    assert_eq!(
        s["test_fid"],
        read_json(&b.join("summary.json"))["test_fid"]
    );

    // generate: a labelled folder the folder loader reads back, and IDX files.
    let out = run(
        d,
        &[
            "generate",
            "artifacts/straight",
            "--per-class",
            "3",
            "--out",
            "gen",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let set = fovea::data::folder::load(&d.join("gen"), 0, 0.5, 1).unwrap();
    let names = read_json(&a.join("run.json"))["data"]["classes"].clone();
    let names: Vec<String> = serde_json::from_value(names).unwrap();
    assert_eq!(set.classes.len(), 10);
    for (i, (got, want)) in set.classes.iter().zip(&names).enumerate() {
        assert_eq!(got, &format!("{i}-{}", want.replace('/', "_")));
    }
    let mut per_class = [0usize; 10];
    for s in [&set.train, &set.test] {
        for &l in &s.labels {
            per_class[l as usize] += 1;
        }
    }
    assert_eq!(per_class, [3; 10]);
    let out = run(
        d,
        &[
            "generate",
            "artifacts/straight",
            "--per-class",
            "2",
            "--out",
            "idx",
            "--format",
            "idx",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (images, labels, h, w) = fovea::data::idx::read_split(
        &d.join("idx/images-idx3-ubyte"),
        &d.join("idx/labels-idx1-ubyte"),
    )
    .unwrap();
    assert_eq!((images.len(), h, w), (20 * 784, 28, 28));
    assert_eq!(labels, (0..10u8).flat_map(|c| [c, c]).collect::<Vec<_>>());
    // Nothing is overwritten; a classifier run is refused.
    let out = run(d, &["generate", "artifacts/straight", "--out", "gen"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not empty"), "{}", text(&out));

    // [data.synthetic]: a classifier trains on its real images plus half as many drawn from the
    // GAN, class by class; a crash in mid-epoch resumes on the very same images.
    let synthetic = [
        "--set",
        "data.synthetic.generator=\"artifacts/straight\"",
        "--set",
        "data.synthetic.ratio=0.5",
        "--set",
        "model.blocks=[{channels=4}]",
        "--set",
        "train.epochs=2",
    ];
    let aug = train(d, "aug", &synthetic);
    assert!(aug.status.success(), "{}", text(&aug));
    let info = read_json(&d.join("artifacts/aug/run.json"));
    let real = read_json(&a.join("run.json"))["data"]["train"]
        .as_u64()
        .unwrap();
    let drawn = &info["data"]["synthetic"];
    assert_eq!(drawn["real"].as_u64(), Some(real), "{info}");
    assert_eq!(drawn["images"].as_u64(), Some(real / 2), "{info}");
    assert_eq!(info["data"]["train"].as_u64(), Some(real + real / 2));
    assert!(drawn["checkpoint"].as_str().unwrap().ends_with("best.ckpt"));
    let crashed = train(
        d,
        "aug-crashed",
        &[&synthetic[..], &["--crash-at-step", "17"]].concat(),
    );
    assert_eq!(crashed.status.code(), Some(137), "{}", text(&crashed));
    let resumed = run(d, &["resume", "artifacts/aug-crashed", "--quiet"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let c = d.join("artifacts/aug-crashed");
    assert_eq!(
        logged(&d.join("artifacts/aug")),
        logged(&c),
        "a resumed run with synthetic images differs"
    );
    // `only`: generated images alone; a classifier run has no generator.
    let only = train(
        d,
        "only",
        &[&synthetic[..], &["--set", "data.synthetic.only=true"]].concat(),
    );
    assert!(only.status.success(), "{}", text(&only));
    let info = read_json(&d.join("artifacts/only/run.json"));
    assert_eq!(info["data"]["train"].as_u64(), Some(real / 2), "{info}");
    let out = train(
        d,
        "bad",
        &["--set", "data.synthetic.generator=\"artifacts/aug\""],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("data.synthetic.generator = artifacts/aug")
            && text(&out).contains("only a gan run has a generator"),
        "{}",
        text(&out)
    );

    // A judge must be a cnn run: its last hidden layer is the feature space.
    let lif = train(
        d,
        "lif",
        &[
            "--set",
            "model.kind=cnn-lif",
            "--set",
            "model.blocks=[{channels=4}]",
            "--set",
            "train.epochs=1",
        ],
    );
    assert!(lif.status.success(), "{}", text(&lif));
    let out = train(
        d,
        "judged",
        &[&setup[..], &["--set", "eval.judge=\"artifacts/lif\""]].concat(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not a cnn run"), "{}", text(&out));
    assert!(
        !d.join("artifacts/judged").exists(),
        "a refused run leaves no folder"
    );

    // eval of a GAN run: the task's own test metrics, recomputed from a checkpoint.
    let out = run(
        d,
        &[
            "eval",
            "artifacts/straight",
            "--checkpoint",
            "last",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = read_json(&d.join("artifacts/straight/summary.json"));
    assert_eq!(e["test_fid"], s["last"]["test_fid"], "{e}");
    // predict reads classifier runs only, and says so.
    let out = run(d, &["predict", "artifacts/straight", "x.png"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("a gan run has no classifier"),
        "{}",
        text(&out)
    );
    // export writes both networks and the moving average, each under its own name.
    let out = run(
        d,
        &[
            "export",
            "artifacts/straight",
            "--format",
            "safetensors",
            "--out",
            "g.st",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(d.join("g.st")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names = file.names();
    let values = |prefix: &str| -> usize {
        names
            .iter()
            .filter(|n| n.starts_with(prefix) && !n.ends_with(".num_batches_tracked"))
            .map(|n| file.tensor(n).unwrap().shape().iter().product::<usize>())
            .sum()
    };
    let (_, g, disc, ema) = newest_weights(&d.join("artifacts/straight"));
    assert_eq!(values("generator."), g.len(), "{names:?}");
    assert_eq!(values("generator_ema."), ema.len(), "{names:?}");
    assert_eq!(values("discriminator."), disc.len(), "{names:?}");
    // ONNX export is a classifier's inference path; a gan run is told where its weights go.
    let out = run(
        d,
        &[
            "export",
            "artifacts/straight",
            "--format",
            "onnx",
            "--out",
            "g.onnx",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("ONNX export takes a classifier run")
            && text(&out).contains("--format safetensors"),
        "{}",
        text(&out)
    );
}
