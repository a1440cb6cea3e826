//! The restore task through the real binary: training with its judge, artifacts and metrics,
//! exact resume after a crash in mid-epoch, eval, and the damage and restore commands.

mod common;

use std::path::Path;

use common::{crash_then_resume, logged, on_sample, read_json, run, text, train};

fn generator_weights(run_dir: &Path) -> Vec<f32> {
    let (_, meta, parts) = fovea::train::checkpoint::newest_intact::<fovea::train::CheckpointMeta>(
        &run_dir.join("checkpoints"),
    )
    .unwrap()
    .unwrap();
    let config = fovea::config::run_config(run_dir).unwrap();
    let fovea::models::ModelConfig::Restore(r) = &config.model else {
        panic!("not a restore run")
    };
    let (g, d) = r.init(meta.shape, &burn::tensor::Device::flex()).unwrap();
    let g = fovea::tasks::records::load_module(g, &parts, "generator").unwrap();
    let d = fovea::tasks::records::load_module(d, &parts, "discriminator").unwrap();
    let mut w = fovea::models::flat_params(&g);
    w.extend(fovea::models::flat_params(&d));
    w
}

#[test]
fn a_restore_run_measures_itself_resumes_exactly_and_repairs_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = on_sample(
        "restore-inpaint.toml",
        &[
            // enough steps for the network to repair better than the damage it sees
            "train.epochs=6",
            "train.lr=0.002",
            "model.channels=4",
            "model.d_channels=4",
            "eval.judge_epochs=1",
            "model.damage.hole=8",
            "model.damage.noise=0.1",
            "model.damage.hole_at=\"random\"",
        ],
    );
    let straight = train(d, "straight", &setup);
    assert!(straight.status.success(), "{}", text(&straight));
    let a = d.join("artifacts/straight");
    let s = read_json(&a.join("summary.json"));
    for key in fovea::tasks::restore::EVAL_METRICS {
        assert!(s[format!("test_{key}")].as_f64().is_some(), "{key}: {s}");
    }
    assert_eq!(s["baseline"], "harmonic fill + median 3×3", "{s}");
    assert!(s["judge"].as_str().unwrap().contains("judges"), "{s}");
    // the damage costs accuracy and quality; the classical repair wins some of it back
    assert!(
        s["test_psnr_damaged"].as_f64() < s["test_psnr_baseline"].as_f64(),
        "{s}"
    );
    // and the trained network repairs: its images are closer to the clean ones than the
    // damaged images are
    assert!(
        s["test_psnr"].as_f64() > s["test_psnr_damaged"].as_f64(),
        "{s}"
    );
    assert!(
        s["test_ssim"].as_f64() > s["test_ssim_damaged"].as_f64(),
        "{s}"
    );
    for f in [
        "panels.png",
        "panels/epoch-001.png",
        "panels/epoch-002.png",
        "psnr.png",
        "adversarial.png",
    ] {
        assert!(a.join(f).is_file(), "missing {f}");
    }

    // A crash in mid-epoch, then resume: the same weights and the same logged metrics.
    let (_, b) = crash_then_resume(d, "crashed", &setup, "13");
    assert_eq!(
        generator_weights(&a),
        generator_weights(&b),
        "weights differ after resume"
    );
    assert_eq!(logged(&a), logged(&b), "metrics.jsonl differs after resume");

    // eval recomputes the summary's test metrics from a checkpoint.
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    let e: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(e["test_psnr"], s["last"]["test_psnr"], "{e}");

    // damage: files at their own size, a mask beside each; restore reads them back.
    let clean = d.join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    for (i, side) in [(0u8, 16u32), (1, 20)] {
        let img = image::GrayImage::from_fn(side, side, |x, y| {
            image::Luma([((x * 13 + y * 7) % 256) as u8 + i])
        });
        img.save(clean.join(format!("c{i}.png"))).unwrap();
    }
    let out = run(
        d,
        &[
            "damage",
            "clean/c0.png",
            "clean/c1.png",
            "--kind",
            "hole=6",
            "--kind",
            "noise=0.1",
            "--out",
            "dmg",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    for f in ["c0.png", "c0.mask.png", "c1.png", "c1.mask.png"] {
        assert!(d.join("dmg").join(f).is_file(), "missing {f}");
    }
    let mask = image::open(d.join("dmg/c1.mask.png")).unwrap().to_luma8();
    assert_eq!(mask.dimensions(), (20, 20));
    assert_eq!(mask.pixels().filter(|p| p.0[0] == 255).count(), 36);
    let out = run(
        d,
        &[
            "restore",
            "artifacts/straight",
            "dmg/c0.png",
            "dmg/c1.png",
            "--out",
            "fixed",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(image::open(d.join("fixed/c1.png")).unwrap().width(), 20);
    // without its mask, a hole model refuses the image and names the missing file
    let out = run(
        d,
        &[
            "restore",
            "artifacts/straight",
            "clean/c0.png",
            "--out",
            "nomask",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("c0.mask.png"), "{}", text(&out));
    // with --panel the images are clean: damaged, repaired and shown side by side
    let out = run(
        d,
        &[
            "restore",
            "artifacts/straight",
            "clean/c0.png",
            "--panel",
            "--out",
            "panel",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("PSNR damaged"), "{}", text(&out));
    assert!(d.join("panel/c0.panel.png").is_file());
    // nothing is overwritten
    let out = run(
        d,
        &[
            "restore",
            "artifacts/straight",
            "clean/c0.png",
            "--panel",
            "--out",
            "panel",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // a bad damage kind names itself
    let out = run(
        d,
        &["damage", "clean/c0.png", "--kind", "blur", "--out", "x"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--kind blur"), "{}", text(&out));
}

#[test]
fn without_the_adversarial_loss_there_is_no_discriminator_to_train() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let setup = on_sample(
        "restore-sr2.toml",
        &[
            "train.epochs=1",
            "model.channels=4",
            "eval.judge_epochs=1",
            "train.restore.adversarial=0",
        ],
    );
    let out = train(d, "l1", &setup);
    assert!(out.status.success(), "{}", text(&out));
    let a = d.join("artifacts/l1");
    let s = read_json(&a.join("summary.json"));
    assert_eq!(s["baseline"], "bicubic", "{s}");
    assert!(!a.join("adversarial.png").exists());
    let keys: Vec<String> = fovea::run_files::read_metrics(&a)
        .unwrap()
        .into_iter()
        .flat_map(|r| r.values.into_keys())
        .collect();
    assert!(
        keys.iter().any(|k| k == "l1") && !keys.iter().any(|k| k == "d_loss"),
        "{keys:?}"
    );
}
