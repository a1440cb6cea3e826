//! `fovea compare --config FILE`: the survey's experiment (CNN versus SVM, its Figure 2),
//! extended to every kind. A compare file lists model configs; each is trained on the same data
//! and split (or its finished run reused, or its interrupted run resumed), in a child `fovea`
//! process of its own, so that a model that fails is reported and the others still run, and its
//! peak memory is its own. Then every model is measured here on the same test set: accuracy,
//! per-class accuracy, accuracy on (up to 10,000 of) its training images and the train–test gap,
//! inference time per image, parameters, training time and peak memory. With `train_sizes`,
//! every model is trained once per size (the same stratified subsets, `data.train_limit`) and
//! the learning curves are drawn.
//!
//! Written into the compare folder: `comparison.md`, `comparison.csv`, `comparison.json`,
//! `comparison.png` (accuracy per model, with training time as a second panel),
//! `per-class.png` (per-class accuracy heat map) and, with sizes, `learning-curves.png`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::runs;
use crate::commands::executor::{self, Ended, ExecutorConfig, Training};
use crate::commands::experiment::{self, FileArgs, Finished};
use crate::commands::session;
use crate::config::{self, Config};
use crate::data::split::stratified_take;
use crate::data::{self, ImageSet};
use crate::fsio;
use crate::models::ModelConfig;
use crate::report::plots;
use crate::run_files;
use crate::tasks::classify;

/// A compare file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    /// The heading of the table and the charts.
    pub title: String,
    /// Training-set sizes for the learning curves (`data.train_limit`); empty = each model once
    /// on the training set its config gives.
    #[serde(default)]
    pub train_sizes: Vec<usize>,
    /// Overrides for every model (before each model's own and the command line's).
    #[serde(default)]
    pub set: Vec<String>,
    #[serde(rename = "model")]
    pub models: Vec<Entry>,
    /// Where the trainings run (`local`, `slurm`) and how.
    #[serde(default)]
    pub executor: ExecutorConfig,
}

/// One model of the comparison.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Letters, digits, `-`, `_`, `+` and `.` (not first): its run folder's name.
    pub name: String,
    pub config: PathBuf,
    /// Overrides for this model (before the command line's).
    #[serde(default)]
    pub set: Vec<String>,
    /// What the model is, for the table.
    #[serde(default)]
    pub about: String,
}

/// One model (at one training size) measured.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub model: String,
    pub kind: String,
    pub about: String,
    /// `data.train_limit` of this row (absent without `train_sizes`).
    pub train_size: Option<usize>,
    pub run: String,
    /// Training images the run saw (for `kernel-svm`, its subset).
    pub train_images: Option<usize>,
    pub test_accuracy: Option<f64>,
    pub train_accuracy: Option<f64>,
    /// train − test accuracy.
    pub gap: Option<f64>,
    pub training_time_s: Option<f64>,
    pub inference_ms_per_image: Option<f64>,
    pub parameters: Option<u64>,
    pub peak_memory_mib: Option<f64>,
    pub per_class_accuracy: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn read(path: &Path) -> Result<CompareConfig> {
    experiment::read_file(path, "compare", CompareConfig::validate)
}

impl CompareConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.models.is_empty() {
            return Err("no [[model]] given".into());
        }
        experiment::check_names("model", self.models.iter().map(|m| m.name.as_str()))?;
        if let Some(bad) = self.train_sizes.iter().find(|&&n| n == 0) {
            return Err(format!("train_sizes: {bad} is not a size (at least 1)"));
        }
        self.executor.validate()
    }
}

fn run_name(model: &str, size: Option<usize>) -> String {
    match size {
        Some(n) => format!("{model}-n{n}"),
        None => model.to_string(),
    }
}

/// Trains (or reuses) every model at every size, measures them, writes the tables and charts.
pub fn run(args: FileArgs) -> Result<Finished> {
    let c = read(&args.file)?;
    let dir = experiment::open_folder(&args.file, &args.out, args.name.as_deref(), "compare.toml")?;
    let cli = session::cli_overrides(
        args.overrides.clone(),
        args.backend,
        args.data_dir.as_deref(),
    );
    let sizes: Vec<Option<usize>> = if c.train_sizes.is_empty() {
        vec![None]
    } else {
        c.train_sizes.iter().map(|&n| Some(n)).collect()
    };
    crate::train::install_interrupt_handler();
    // every (size, model): its training, or why it has none
    let mut planned: Vec<(&Entry, Option<usize>, String, Result<usize>)> = Vec::new();
    let mut trainings = Vec::new();
    for &size in &sizes {
        for entry in &c.models {
            let run = run_name(&entry.name, size);
            let mut overrides = c.set.clone();
            overrides.extend_from_slice(&entry.set);
            if let Some(n) = size {
                overrides.push(format!("data.train_limit={n}"));
            }
            overrides.extend_from_slice(&cli);
            let training = config::load(Some(&entry.config), &overrides)
                .with_context(|| format!("model `{}`", entry.name))
                .map(|config| {
                    trainings.push(Training {
                        run: run.clone(),
                        config,
                        config_file: entry.config.clone(),
                        overrides,
                        needs: Vec::new(),
                        what: format!("{} ({})", entry.name, entry.config.display()),
                    });
                    trainings.len() - 1
                });
            planned.push((entry, size, run, training));
        }
    }
    let ended = executor::run_all(
        &c.executor,
        &args.executor,
        &dir,
        &trainings,
        "compare",
        args.quiet,
    )?;
    let mut rows = Vec::new();
    let mut interrupted = false;
    for (entry, size, run, training) in planned {
        // a training the interrupt stopped has no row yet: the same command again resumes it
        if let Ok(i) = &training
            && ended[*i] == Ended::Stopped
        {
            interrupted = true;
            continue;
        }
        let outcome = training.and_then(|i| measure(&trainings[i].config, ended[i].folder()?));
        let row = match outcome {
            Ok(m) => m.into_row(entry, size, &run),
            Err(err) => {
                eprintln!("compare: {run} failed: {err:#}");
                Row::failed(entry, size, &run, format!("{err:#}"))
            }
        };
        if !args.quiet && row.error.is_none() {
            println!(
                "compare: {run}: test accuracy {:.4}",
                row.test_accuracy.unwrap_or(f64::NAN)
            );
        }
        rows.push(row);
    }
    interrupted |= crate::train::interrupted();
    let classes = first_classes(&dir, &rows);
    let table = markdown(&c, &rows, &classes);
    fsio::write_atomic(&dir.join("comparison.md"), table.as_bytes())?;
    fsio::write_atomic(&dir.join("comparison.csv"), csv(&rows, &classes).as_bytes())?;
    fsio::write_json(
        &dir.join("comparison.json"),
        &json!({
            "title": c.title,
            "file": args.file.display().to_string(),
            "command": std::env::args().collect::<Vec<_>>(),
            "git_commit": run_files::git_commit(),
            "classes": classes,
            "train_sizes": c.train_sizes,
            "rows": rows,
        }),
    )?;
    let mut written = vec!["comparison.md", "comparison.csv", "comparison.json"];
    let largest: Vec<&Row> = largest_size_rows(&rows, &sizes);
    plots::comparison_bars(&dir.join(COMPARISON_PNG), &c.title, &bars(&largest))?;
    written.push(COMPARISON_PNG);
    if !classes.is_empty() {
        let measured: Vec<&Row> = largest
            .iter()
            .copied()
            .filter(|r| r.per_class_accuracy.len() == classes.len())
            .collect();
        let names: Vec<String> = measured.iter().map(|r| r.model.clone()).collect();
        let values: Vec<Vec<f64>> = measured
            .iter()
            .map(|r| r.per_class_accuracy.clone())
            .collect();
        plots::per_class_heat_map(
            &dir.join(PER_CLASS_PNG),
            &format!("{} — per-class test accuracy", c.title),
            &names,
            &classes,
            &values,
        )?;
        written.push(PER_CLASS_PNG);
    }
    if !c.train_sizes.is_empty() {
        let curves: Vec<(String, Vec<(f64, f64)>)> = c
            .models
            .iter()
            .map(|m| {
                let points = rows
                    .iter()
                    .filter(|r| r.model == m.name)
                    .filter_map(|r| Some((r.train_images? as f64, r.test_accuracy?)))
                    .collect();
                (m.name.clone(), points)
            })
            .collect();
        plots::learning_curves(
            &dir.join(LEARNING_CURVES_PNG),
            &format!("{} — learning curves", c.title),
            "training images",
            &curves,
        )?;
        written.push(LEARNING_CURVES_PNG);
    }
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    Ok(Finished {
        dir,
        table,
        written,
        failed,
        interrupted,
    })
}

pub const COMPARISON_PNG: &str = "comparison.png";
pub const PER_CLASS_PNG: &str = "per-class.png";
pub const LEARNING_CURVES_PNG: &str = "learning-curves.png";

/// The rows of the largest training size (all rows without sizes): what the bar chart and the
/// heat map show.
fn largest_size_rows<'a>(rows: &'a [Row], sizes: &[Option<usize>]) -> Vec<&'a Row> {
    let largest = sizes.iter().copied().max().flatten();
    rows.iter().filter(|r| r.train_size == largest).collect()
}

fn bars(rows: &[&Row]) -> Vec<plots::Bar> {
    rows.iter()
        .map(|r| plots::Bar {
            label: r.model.clone(),
            accuracy: r.test_accuracy,
            time_s: r.training_time_s,
        })
        .collect()
}

/// The class names, from the first measured run's summary.
fn first_classes(dir: &Path, rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.error.is_none())
        .find_map(|r| {
            let s = run_files::read_summary(&dir.join(&r.run)).ok()?;
            serde_json::from_value(s["classes"].clone()).ok()
        })
        .unwrap_or_default()
}

/// What is measured of one finished run.
struct Measured {
    kind: String,
    train_images: usize,
    test_accuracy: f64,
    train_accuracy: f64,
    training_time_s: Option<f64>,
    inference_ms_per_image: f64,
    parameters: Option<u64>,
    peak_memory_mib: Option<f64>,
    per_class_accuracy: Vec<f64>,
}

/// Training images the train accuracy is measured on (at most).
const TRAIN_EVAL: usize = 10_000;

/// Loads the run's last weights and measures them on its data.
fn measure(config: &Config, folder: &Path) -> Result<Measured> {
    let summary = run_files::read_summary(folder)?;
    let info = run_files::read_info(folder)?;
    let loaded = runs::load_run(folder, "last", Some(config.backend))?;
    let data = data::load(&loaded.config.data, loaded.config.seed)?;
    loaded
        .meta
        .check_data(
            &format!("the data of {} now", folder.display()),
            data.train.shape,
            data.source.classes.len(),
        )
        .map_err(|e| anyhow::anyhow!("{e:#}: move the run away to train it again"))?;
    let classes = loaded.meta.classes.len();
    // The kernel SVM is fitted on the first `subset` images of each class: its training accuracy
    // is measured on exactly those.
    let (train_images, train_eval) = match &loaded.config.model {
        ModelConfig::KernelSvm(k) => {
            let n = k.subset.min(data.train.len());
            (n, n)
        }
        _ => (info.data.train, TRAIN_EVAL.min(data.train.len())),
    };
    let all: Vec<usize> = (0..data.train.len()).collect();
    let train_set = data.train.select(&stratified_take(
        &data.train.labels,
        &all,
        classes,
        train_eval,
    ));
    let eval = |set: &ImageSet| {
        classify::evaluate(
            &loaded.model,
            set,
            &loaded.meta.normalizer,
            loaded.config.train.eval_batch_size,
            classes,
            loaded.config.seed,
            &loaded.device,
        )
    };
    // Warm-up, then the timed pass over the test set.
    let warm: Vec<usize> = (0..data.test.len().min(256)).collect();
    eval(&data.test.select(&warm))?;
    let t = Instant::now();
    let test = eval(&data.test)?;
    let inference_ms_per_image = t.elapsed().as_secs_f64() * 1e3 / data.test.len().max(1) as f64;
    let train = eval(&train_set)?;
    Ok(Measured {
        kind: loaded.config.model.kind().to_string(),
        train_images,
        test_accuracy: test.accuracy,
        train_accuracy: train.accuracy,
        training_time_s: summary["training_time_s"].as_f64(),
        inference_ms_per_image,
        parameters: summary["parameter_count"].as_u64(),
        peak_memory_mib: summary["peak_rss_mib"].as_f64(),
        per_class_accuracy: test.per_class_accuracy(),
    })
}

impl Measured {
    fn into_row(self, entry: &Entry, size: Option<usize>, run: &str) -> Row {
        Row {
            model: entry.name.clone(),
            kind: self.kind,
            about: entry.about.clone(),
            train_size: size,
            run: run.to_string(),
            train_images: Some(self.train_images),
            test_accuracy: Some(self.test_accuracy),
            train_accuracy: Some(self.train_accuracy),
            gap: Some(self.train_accuracy - self.test_accuracy),
            training_time_s: self.training_time_s,
            inference_ms_per_image: Some(self.inference_ms_per_image),
            parameters: self.parameters,
            peak_memory_mib: self.peak_memory_mib,
            per_class_accuracy: self.per_class_accuracy,
            error: None,
        }
    }
}

impl Row {
    fn failed(entry: &Entry, size: Option<usize>, run: &str, error: String) -> Row {
        Row {
            model: entry.name.clone(),
            kind: String::new(),
            about: entry.about.clone(),
            train_size: size,
            run: run.to_string(),
            train_images: None,
            test_accuracy: None,
            train_accuracy: None,
            gap: None,
            training_time_s: None,
            inference_ms_per_image: None,
            parameters: None,
            peak_memory_mib: None,
            per_class_accuracy: Vec::new(),
            error: Some(error),
        }
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "—".into())
}

fn markdown(c: &CompareConfig, rows: &[Row], classes: &[String]) -> String {
    let mut s = format!(
        "# {}\n\nEvery model on the same data and split, measured on the same test set. \
         Train accuracy: on up to {TRAIN_EVAL} of the model's training images (the kernel SVM: its \
         subset); gap = train − test. Inference: the last weights over the test set, per image, \
         batches of `train.eval_batch_size`. Peak memory: the training process's.\n\n",
        c.title
    );
    s.push_str(
        "| model | kind | train images | test accuracy | train accuracy | gap | training time | \
         inference per image | parameters | peak memory | run |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        if let Some(err) = &r.error {
            s.push_str(&format!(
                "| {} | | {} | failed: {} | | | | | | | {} |\n",
                r.model,
                r.train_size.map(|n| n.to_string()).unwrap_or_default(),
                err.lines().next().unwrap_or("").replace('|', "\\|"),
                r.run
            ));
            continue;
        }
        s.push_str(&format!(
            "| {} | {} | {} | **{}** | {} | {} | {} s | {} ms | {} | {} MiB | {} |\n",
            r.model,
            r.kind,
            r.train_images.map(|n| n.to_string()).unwrap_or_default(),
            opt(r.test_accuracy, 4),
            opt(r.train_accuracy, 4),
            opt(r.gap, 4),
            opt(r.training_time_s, 1),
            opt(r.inference_ms_per_image, 3),
            r.parameters
                .map(|p| p.to_string())
                .unwrap_or_else(|| "—".into()),
            opt(r.peak_memory_mib, 0),
            r.run
        ));
    }
    if !classes.is_empty() {
        let measured: Vec<&Row> = rows
            .iter()
            .filter(|r| r.per_class_accuracy.len() == classes.len())
            .collect();
        if !measured.is_empty() {
            s.push_str("\n## Per-class test accuracy\n\n| class |");
            for r in &measured {
                s.push_str(&format!(" {} |", r.run));
            }
            s.push_str("\n|---|");
            s.push_str(&"---|".repeat(measured.len()));
            s.push('\n');
            for (j, class) in classes.iter().enumerate() {
                s.push_str(&format!("| {class} |"));
                for r in &measured {
                    s.push_str(&format!(" {:.3} |", r.per_class_accuracy[j]));
                }
                s.push('\n');
            }
        }
    }
    if !c.train_sizes.is_empty() {
        s.push_str("\n## Learning curves: test accuracy by training-set size\n\n| model |");
        for n in &c.train_sizes {
            s.push_str(&format!(" {n} |"));
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(c.train_sizes.len()));
        s.push('\n');
        for m in &c.models {
            s.push_str(&format!("| {} |", m.name));
            for &n in &c.train_sizes {
                let cell = rows
                    .iter()
                    .find(|r| r.model == m.name && r.train_size == Some(n))
                    .map(|r| match r.test_accuracy {
                        Some(a) => format!("{a:.4} (gap {})", opt(r.gap, 3)),
                        None => "failed".into(),
                    })
                    .unwrap_or_else(|| "—".into());
                s.push_str(&format!(" {cell} |"));
            }
            s.push('\n');
        }
    }
    s
}

fn csv(rows: &[Row], classes: &[String]) -> String {
    let mut s = String::from(
        "model,kind,train_size,train_images,test_accuracy,train_accuracy,gap,training_time_s,\
         inference_ms_per_image,parameters,peak_memory_mib,run,error",
    );
    for c in classes {
        s.push_str(&format!(",acc_{}", c.replace([',', '"'], "_")));
    }
    s.push('\n');
    let f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in rows {
        let error = r
            .error
            .as_deref()
            .map(|e| format!("\"{}\"", e.lines().next().unwrap_or("").replace('"', "'")))
            .unwrap_or_default();
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.model,
            r.kind,
            r.train_size.map(|n| n.to_string()).unwrap_or_default(),
            r.train_images.map(|n| n.to_string()).unwrap_or_default(),
            f(r.test_accuracy),
            f(r.train_accuracy),
            f(r.gap),
            f(r.training_time_s),
            f(r.inference_ms_per_image),
            r.parameters.map(|p| p.to_string()).unwrap_or_default(),
            f(r.peak_memory_mib),
            r.run,
            error
        ));
        if r.per_class_accuracy.len() == classes.len() {
            for a in &r.per_class_accuracy {
                s.push_str(&format!(",{a}"));
            }
        } else {
            s.push_str(&",".repeat(classes.len()));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, size: Option<usize>, acc: Option<f64>) -> Row {
        let entry = Entry {
            name: model.into(),
            config: "c.toml".into(),
            set: vec![],
            about: String::new(),
        };
        match acc {
            Some(a) => Measured {
                kind: "cnn".into(),
                train_images: size.unwrap_or(100),
                test_accuracy: a,
                train_accuracy: a + 0.1,
                training_time_s: Some(2.0),
                inference_ms_per_image: 0.5,
                parameters: Some(10),
                peak_memory_mib: Some(100.0),
                per_class_accuracy: vec![a, a],
            }
            .into_row(&entry, size, &run_name(model, size)),
            None => Row::failed(&entry, size, &run_name(model, size), "boom".into()),
        }
    }

    #[test]
    fn tables_carry_every_row_the_gap_and_the_failures() {
        let c = CompareConfig {
            title: "t".into(),
            train_sizes: vec![100, 200],
            set: vec![],
            executor: Default::default(),
            models: vec![
                Entry {
                    name: "cnn".into(),
                    config: "a.toml".into(),
                    set: vec![],
                    about: String::new(),
                },
                Entry {
                    name: "svm".into(),
                    config: "b.toml".into(),
                    set: vec![],
                    about: String::new(),
                },
            ],
        };
        let rows = vec![
            row("cnn", Some(100), Some(0.8)),
            row("svm", Some(100), None),
            row("cnn", Some(200), Some(0.9)),
            row("svm", Some(200), Some(0.85)),
        ];
        let classes = vec!["a".to_string(), "b".to_string()];
        let md = markdown(&c, &rows, &classes);
        assert!(md.contains("| svm | | 100 | failed: boom |"), "{md}");
        assert!(md.contains("0.9000 (gap 0.100)"), "{md}");
        assert!(md.contains("| svm | failed | 0.8500 (gap 0.100) |"), "{md}");
        let csv = csv(&rows, &classes);
        assert_eq!(csv.lines().count(), 5);
        assert!(csv.lines().all(|l| l.split(',').count() == 15), "{csv}");
        let largest = largest_size_rows(&rows, &[Some(100), Some(200)]);
        assert_eq!(
            largest.iter().map(|r| r.run.as_str()).collect::<Vec<_>>(),
            vec!["cnn-n200", "svm-n200"]
        );
    }

    #[test]
    fn names_must_be_folder_names_and_unique() {
        let mut c = CompareConfig {
            title: "t".into(),
            train_sizes: vec![],
            set: vec![],
            executor: Default::default(),
            models: vec![Entry {
                name: "a b".into(),
                config: "a.toml".into(),
                set: vec![],
                about: String::new(),
            }],
        };
        assert!(c.validate().unwrap_err().contains("letters"));
        c.models[0].name = "a".into();
        c.models.push(c.models[0].clone());
        assert!(c.validate().unwrap_err().contains("twice"));
        c.models.pop();
        c.train_sizes = vec![0];
        assert!(c.validate().unwrap_err().contains("train_sizes"));
    }
}
