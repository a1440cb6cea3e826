//! Every config file in config/ loads; typos and bad values give errors naming the key and file.

use std::path::Path;

use fovea::config;

#[test]
fn every_config_file_loads_and_builds_its_model() {
    let mut n = 0;
    for entry in std::fs::read_dir("config").unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if stem.starts_with("compare") {
            // A compare file: it reads, and every model it lists loads with its overrides.
            let c = fovea::commands::compare::read(&path).unwrap_or_else(|e| panic!("{e:#}"));
            for m in &c.models {
                let mut set = c.set.clone();
                set.extend_from_slice(&m.set);
                config::load(Some(&m.config), &set)
                    .unwrap_or_else(|e| panic!("{}: model {}: {e:#}", path.display(), m.name));
            }
            continue;
        }
        if path.extension().is_some_and(|e| e == "toml") {
            let c = config::load(Some(&path), &[])
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            let shape = fovea::data::InputShape {
                channels: 3,
                height: 32,
                width: 32,
            };
            let device = burn::tensor::Device::flex();
            match &c.model {
                // A GAN's task builds its two networks; there is no classifier to build.
                fovea::models::ModelConfig::Gan(g) => {
                    g.init(shape, 10, &device).unwrap();
                }
                fovea::models::ModelConfig::Restore(r) => {
                    r.init(shape, &device).unwrap();
                }
                m => {
                    m.init(shape, 10, &device).unwrap();
                }
            }
            n += 1;
        }
    }
    assert!(n >= 3, "found only {n} config files");
}

#[test]
fn every_experiment_file_reads_and_every_arm_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir("config/experiments").unwrap() {
        let path = entry.unwrap().path();
        let e = fovea::commands::experiment::read(&path).unwrap_or_else(|e| panic!("{e:#}"));
        for arm in &e.arms {
            config::load(Some(&arm.config), &arm.set)
                .unwrap_or_else(|e| panic!("{}: arm {}: {e:#}", path.display(), arm.name));
        }
        n += 1;
    }
    assert!(n >= 2, "found only {n} experiment files");
}

#[test]
fn reference_cnn_reaches_the_v4_layer_of_3136_neurons() {
    let c = config::load(Some(Path::new("config/cnn.toml")), &[]).unwrap();
    let fovea::models::ModelConfig::Cnn(cnn) = &c.model else {
        panic!("config/cnn.toml is not a cnn: {:?}", c.model)
    };
    let f = cnn
        .feature_shape(fovea::data::InputShape {
            channels: 1,
            height: 28,
            width: 28,
        })
        .unwrap();
    assert_eq!(f.pixels(), 3136);
    assert_eq!(c.data.dataset, "fashion-mnist");
}

fn error_of(text: &str, overrides: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    format!("{:#}", config::load(Some(&path), &overrides).unwrap_err())
}

#[test]
fn typos_wrong_types_and_bad_values_name_the_key_and_the_file() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("[train]\nepochz = 3\n", &[], &["bad.toml", "epochz"]),
        (
            "[train]\nepochs = \"three\"\n",
            &[],
            &["bad.toml", "train.epochs", "invalid type"],
        ),
        (
            "[train]\nbatch_size = 0\n",
            &[],
            &["bad.toml", "train.batch_size"],
        ),
        (
            "[train]\nlr = -0.1\n",
            &[],
            &["bad.toml", "train.lr", "-0.1"],
        ),
        (
            "[model]\nkind = \"transformer\"\n",
            &[],
            &["bad.toml", "transformer"],
        ),
        (
            "[model]\nblocks = [{ channels = 8, kernal = 3 }]\n",
            &[],
            &["bad.toml", "kernal"],
        ),
        (
            "[data]\ndataset = \"imagenet\"\n",
            &[],
            &["bad.toml", "data.dataset", "imagenet"],
        ),
        ("[train\n", &[], &["bad.toml"]),
        ("", &["train.batch_size=0"], &["train.batch_size"]),
        (
            "",
            &["train.optimizer=lbfgs"],
            &["train.optimizer", "lbfgs"],
        ),
        ("", &["nosuchsection.key=1"], &["nosuchsection"]),
        ("", &["train.epochs"], &["--set train.epochs"]),
    ];
    for (text, overrides, wants) in cases {
        let err = error_of(text, overrides);
        for want in *wants {
            assert!(
                err.contains(want),
                "error for {text:?} {overrides:?} should mention {want:?}: {err}"
            );
        }
    }
}

#[test]
fn a_file_states_only_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.toml");
    std::fs::write(&path, "[train]\nepochs = 2\n[model]\nhidden = [64]\n").unwrap();
    let c = config::load(Some(&path), &["train.lr=0.01".into()]).unwrap();
    let d = config::Config::default();
    assert_eq!(c.train.epochs, 2);
    assert_eq!(c.train.lr, Some(0.01));
    assert_eq!(c.train.batch_size, d.train.batch_size);
    let fovea::models::ModelConfig::Cnn(cnn) = &c.model else {
        panic!(
            "a [model] section without kind keeps the default cnn: {:?}",
            c.model
        )
    };
    assert_eq!(cnn.hidden, vec![64]);
}

#[test]
fn a_bad_set_key_is_blamed_on_set_not_on_the_defaults_or_the_file() {
    let err = format!(
        "{:#}",
        config::load(None, &["train.epochz=1".to_string()]).unwrap_err()
    );
    assert!(err.contains("--set train.epochz=1"), "{err}");
    assert!(!err.contains("built-in defaults"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.toml");
    std::fs::write(&path, "[train]\nepochs = 2\n").unwrap();
    let overrides = [
        "train.lr=0.01".to_string(),
        "train.batch_size=0".to_string(),
    ];
    let err = format!("{:#}", config::load(Some(&path), &overrides).unwrap_err());
    assert!(err.contains("--set train.batch_size=0"), "{err}");
    assert!(!err.starts_with(&path.display().to_string()), "{err}");
    // a file's own error still names the file
    std::fs::write(&path, "[train]\nepochs = 0\n").unwrap();
    let err = format!(
        "{:#}",
        config::load(Some(&path), &["train.lr=0.01".to_string()]).unwrap_err()
    );
    assert!(
        err.contains("good.toml") && err.contains("train.epochs"),
        "{err}"
    );
}
