//! `fovea experiment FILE`: the same comparison over several seeds. An experiment file lists
//! arms, each a run config with its own `--set` overrides; every arm is trained once per seed
//! (or reused when that run finished before, or resumed when it was interrupted), and the metric
//! each arm names is summarized over the seeds (mean, sample standard deviation, min, max) in
//! `results.md` and `results.json` in the experiment's folder.
//!
//! An override may name an earlier arm as `${arm}`: it becomes that arm's run folder for the same
//! seed (how a classifier arm trains on images drawn from the GAN arm of its seed).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::commands::executor::{self, Ended, ExecutorConfig, ExecutorFlags, Training};
use crate::commands::session;
use crate::config;
use crate::device::BackendKind;
use crate::fsio;
use crate::report::plots;
use crate::run_files;

/// An experiment file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The table's heading.
    pub title: String,
    /// Each arm is trained once per seed (the run's `seed`).
    pub seeds: Vec<u64>,
    /// The `summary.json` key the table reports, unless an arm names its own.
    #[serde(default = "default_metric")]
    pub metric: String,
    #[serde(rename = "arm")]
    pub arms: Vec<Arm>,
    /// What the arms' `x` counts, on the chart's axis (default "labelled training images").
    pub x_label: Option<String>,
    /// Where the trainings run (`local`, `slurm`) and how.
    #[serde(default)]
    pub executor: ExecutorConfig,
}

fn default_metric() -> String {
    "test_accuracy".into()
}

/// One arm: a config file and overrides (applied before the command line's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Letters, digits, `-`, `_`, `+` and `.` (not first): the run folders are `<name>-seed<S>`.
    pub name: String,
    pub config: PathBuf,
    #[serde(default)]
    pub set: Vec<String>,
    /// What the arm is, for the table.
    #[serde(default)]
    pub about: String,
    pub metric: Option<String>,
    /// The arm's point in the chart (`chart.png`): its line (the method) and its x (e.g. the
    /// labelled images it trains on). Arms without both are not drawn.
    pub series: Option<String>,
    pub x: Option<f64>,
}

/// `chart.png` of an experiment: each `series`' mean against `x`, on a log scale.
pub const CHART: &str = "chart.png";

/// `fovea experiment` and `fovea compare`: the file, and what applies to every run it lists.
pub struct FileArgs {
    pub file: PathBuf,
    pub overrides: Vec<String>,
    pub backend: Option<BackendKind>,
    pub data_dir: Option<PathBuf>,
    pub out: PathBuf,
    pub name: Option<String>,
    pub quiet: bool,
    /// The command line's executor settings, over the file's `[executor]`.
    pub executor: ExecutorFlags,
}

/// One arm's results over the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct ArmResult {
    pub name: String,
    pub about: String,
    pub metric: String,
    /// Per seed: the metric, or why the run has none.
    pub runs: Vec<RunResult>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean_training_time_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub seed: u64,
    pub run: String,
    pub value: Option<f64>,
    pub training_time_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ArmResult {
    /// The arm's runs and their statistics over the seeds that gave a value.
    fn new(arm: &Arm, metric: String, runs: Vec<RunResult>) -> Self {
        let values: Vec<f64> = runs.iter().filter_map(|x| x.value).collect();
        let times: Vec<f64> = runs.iter().filter_map(|x| x.training_time_s).collect();
        let stats = mean_std(&values);
        Self {
            name: arm.name.clone(),
            about: arm.about.clone(),
            metric,
            runs,
            mean: stats.map(|(m, _)| m),
            std: stats.and_then(|(_, sd)| sd),
            min: values.iter().copied().reduce(f64::min),
            max: values.iter().copied().reduce(f64::max),
            mean_training_time_s: mean_std(&times).map(|(m, _)| m),
        }
    }
}

/// What `run` (here and in `compare`) wrote.
pub struct Finished {
    pub dir: PathBuf,
    pub table: String,
    /// The files written into `dir`.
    pub written: Vec<&'static str>,
    pub failed: usize,
    /// Ctrl-C stopped a run: the table holds what was done before.
    pub interrupted: bool,
}

pub fn read(path: &Path) -> Result<ExperimentConfig> {
    read_file(path, "experiment", ExperimentConfig::validate)
}

/// Reads a TOML file that lists runs (an experiment or a compare file): its errors name the file.
pub(crate) fn read_file<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    validate: impl Fn(&T) -> std::result::Result<(), String>,
) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} file {}", path.display()))?;
    let v: T = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message().trim()))?;
    validate(&v).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
    Ok(v)
}

/// The names of a file's runs become folder names: letters, digits, `-`, `_`, `+` and `.` (not
/// first), each name once. `what` is `arm` or `model`.
pub(crate) fn check_names<'a>(
    what: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> std::result::Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_+.".contains(c));
        if !ok {
            return Err(format!(
                "{what} `{name}`: a name holds letters, digits, -, _, + and . only (not first)"
            ));
        }
        if seen.contains(&name) {
            return Err(format!("{what} `{name}` is listed twice"));
        }
        seen.push(name);
    }
    Ok(())
}

/// The folder `out/name` (name: `--name`, or the file's name without .toml), created, with the
/// file as it was run copied in as `copy_as`.
pub(crate) fn open_folder(
    file: &Path,
    out: &Path,
    name: Option<&str>,
    copy_as: &str,
) -> Result<PathBuf> {
    let name = match name {
        Some(n) => n.to_string(),
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| copy_as.trim_end_matches(".toml").into()),
    };
    let dir = out.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::copy(file, dir.join(copy_as))
        .with_context(|| format!("cannot copy {} into {}", file.display(), dir.display()))?;
    Ok(dir)
}

impl ExperimentConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.seeds.is_empty() {
            return Err("seeds must list at least one seed".into());
        }
        if self.arms.is_empty() {
            return Err("no [[arm]] given".into());
        }
        check_names("arm", self.arms.iter().map(|a| a.name.as_str()))?;
        for (i, arm) in self.arms.iter().enumerate() {
            if let Some(x) = arm.x
                && !(x > 0.0 && x.is_finite())
            {
                return Err(format!(
                    "arm `{}`: x = {x}: the chart's axis is logarithmic, x must be > 0",
                    arm.name
                ));
            }
            for item in &arm.set {
                for other in references(item) {
                    if !self.arms[..i].iter().any(|a| a.name == other) {
                        return Err(format!(
                            "arm `{}`: set \"{item}\" names ${{{other}}}, which is not an earlier arm",
                            arm.name
                        ));
                    }
                }
            }
        }
        self.executor.validate()
    }
}

/// The `${arm}` references in an override (a bare `{` is TOML's inline table).
fn references(item: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = item;
    while let Some(open) = rest.find("${") {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push(rest[open + 2..open + close].to_string());
        rest = &rest[open + close + 1..];
    }
    out
}

fn run_name(arm: &str, seed: u64) -> String {
    format!("{arm}-seed{seed}")
}

/// Trains (or reuses) every arm for every seed, then writes and returns the table.
pub fn run(args: FileArgs) -> Result<Finished> {
    let e = read(&args.file)?;
    let dir = open_folder(
        &args.file,
        &args.out,
        args.name.as_deref(),
        "experiment.toml",
    )?;
    let cli = session::cli_overrides(
        args.overrides.clone(),
        args.backend,
        args.data_dir.as_deref(),
    );
    let metrics: Vec<String> = e
        .arms
        .iter()
        .map(|a| a.metric.clone().unwrap_or_else(|| e.metric.clone()))
        .collect();
    crate::train::install_interrupt_handler();
    // Per seed and arm: its training, or why it has none.
    let mut planned: Vec<(usize, u64, String, Result<usize>)> = Vec::new();
    let mut trainings: Vec<Training> = Vec::new();
    for &seed in &e.seeds {
        let first = planned.len();
        for (i, arm) in e.arms.iter().enumerate() {
            let run = run_name(&arm.name, seed);
            // the arms it names, of the same seed: their trainings, or why one has none
            let needs: Result<Vec<usize>> = arm
                .set
                .iter()
                .flat_map(|item| references(item))
                .map(|r| {
                    let named = run_name(&r, seed);
                    match planned[first..].iter().find(|p| p.2 == named) {
                        Some((.., Ok(t))) => Ok(*t),
                        _ => Err(anyhow::anyhow!("skipped: needs {named}")),
                    }
                })
                .collect();
            let training = needs.and_then(|needs| {
                let mut t = plan_arm(arm, seed, &cli, &dir, &run)?;
                t.needs = needs;
                trainings.push(t);
                Ok(trainings.len() - 1)
            });
            planned.push((i, seed, run, training));
        }
    }
    let ended = executor::run_all(
        &e.executor,
        &args.executor,
        &dir,
        &trainings,
        "experiment",
        args.quiet,
    )?;
    // Per arm, its runs.
    let mut runs: Vec<Vec<RunResult>> = vec![Vec::new(); e.arms.len()];
    let mut interrupted = crate::train::interrupted();
    for (i, seed, run, training) in planned {
        if let Ok(t) = &training
            && ended[*t] == Ended::Stopped
        {
            interrupted = true;
            continue;
        }
        let metric = &metrics[i];
        let value = training.and_then(|t| {
            let summary = run_files::read_summary(ended[t].folder()?)?;
            let value = summary[metric]
                .as_f64()
                .with_context(|| format!("{run}/summary.json has no number `{metric}`"))?;
            Ok((value, summary["training_time_s"].as_f64()))
        });
        runs[i].push(match value {
            Ok((value, time)) => RunResult {
                seed,
                run,
                value: Some(value),
                training_time_s: time,
                error: None,
            },
            Err(err) => {
                eprintln!("experiment: {run} failed: {err:#}");
                RunResult {
                    seed,
                    run,
                    value: None,
                    training_time_s: None,
                    error: Some(format!("{err:#}")),
                }
            }
        });
    }
    let results: Vec<ArmResult> = e
        .arms
        .iter()
        .zip(metrics)
        .zip(runs)
        .map(|((arm, metric), runs)| ArmResult::new(arm, metric, runs))
        .collect();
    let table = markdown(&e, &results);
    fsio::write_atomic(&dir.join("results.md"), table.as_bytes())?;
    let mut written = vec!["results.md", "results.json"];
    let lines = chart_lines(&e, &results);
    if !lines.is_empty() {
        plots::learning_curves(
            &dir.join(CHART),
            &e.title,
            e.x_label.as_deref().unwrap_or("labelled training images"),
            &lines,
        )?;
        written.push(CHART);
    }
    let json = json!({
        "title": e.title,
        "seeds": e.seeds,
        "file": args.file.display().to_string(),
        "command": std::env::args().collect::<Vec<_>>(),
        "git_commit": run_files::git_commit(),
        "arms": results,
    });
    fsio::write_json(&dir.join("results.json"), &json)?;
    let failed = results
        .iter()
        .flat_map(|r| &r.runs)
        .filter(|x| x.error.is_some())
        .count();
    Ok(Finished {
        dir,
        table,
        written,
        failed,
        interrupted,
    })
}

/// The arm's training for `seed`: its config loaded with the arm's overrides (`${arm}` replaced
/// by that arm's run folder of the same seed), the seed and the command line's.
fn plan_arm(arm: &Arm, seed: u64, cli: &[String], dir: &Path, run: &str) -> Result<Training> {
    let mut overrides: Vec<String> = arm
        .set
        .iter()
        .map(|item| {
            let mut out = item.clone();
            for r in references(item) {
                let folder = dir.join(run_name(&r, seed));
                out = out.replace(&format!("${{{r}}}"), &folder.display().to_string());
            }
            out
        })
        .collect();
    overrides.push(format!("seed={seed}"));
    overrides.extend_from_slice(cli);
    let config = config::load(Some(&arm.config), &overrides)
        .with_context(|| format!("arm `{}`", arm.name))?;
    Ok(Training {
        run: run.to_string(),
        config,
        config_file: arm.config.clone(),
        overrides,
        needs: Vec::new(),
        what: format!("arm `{}` with seed {seed}", arm.name),
    })
}

/// The chart's lines: per `series`, in the order the arms first name it, the means of its arms
/// that have an `x` and a value, by `x`.
fn chart_lines(e: &ExperimentConfig, results: &[ArmResult]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (arm, r) in e.arms.iter().zip(results) {
        let (Some(series), Some(x), Some(mean)) = (&arm.series, arm.x, r.mean) else {
            continue;
        };
        match lines.iter_mut().find(|l| &l.0 == series) {
            Some(line) => line.1.push((x, mean)),
            None => lines.push((series.clone(), vec![(x, mean)])),
        }
    }
    for line in &mut lines {
        line.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

/// The mean and the sample standard deviation (absent for one value).
fn mean_std(v: &[f64]) -> Option<(f64, Option<f64>)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.len() > 1)
        .then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    Some((mean, std))
}

fn markdown(e: &ExperimentConfig, results: &[ArmResult]) -> String {
    let mut s = format!(
        "# {}\n\nEach row: one arm trained once per seed ({}); mean ± sample standard deviation, \
         min–max, and every seed's value.\n\n",
        e.title,
        e.seeds
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    s.push_str(
        "| arm | what | metric | mean ± std | min – max | per seed | mean training time |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|\n");
    for r in results {
        let mean = match (r.mean, r.std) {
            (Some(m), Some(sd)) => format!("**{m:.4}** ± {sd:.4}"),
            (Some(m), None) => format!("**{m:.4}**"),
            _ => "—".into(),
        };
        let range = match (r.min, r.max) {
            (Some(a), Some(b)) => format!("{a:.4} – {b:.4}"),
            _ => "—".into(),
        };
        let per_seed: Vec<String> = r
            .runs
            .iter()
            .map(|x| match (x.value, &x.error) {
                (Some(v), _) => format!("{v:.4}"),
                (None, Some(err)) => format!("failed ({})", err.lines().next().unwrap_or("")),
                _ => "—".into(),
            })
            .collect();
        let time = r
            .mean_training_time_s
            .map(|t| format!("{t:.0} s"))
            .unwrap_or_else(|| "—".into());
        s.push_str(&format!(
            "| {} | {} | {} | {mean} | {range} | {} | {time} |\n",
            r.name,
            r.about,
            r.metric,
            per_seed.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((m - 2.5).abs() < 1e-12);
        // Σ(x − 2.5)² = 5, / (4 − 1)
        assert!((s.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[0.7]), Some((0.7, None)));
        assert_eq!(mean_std(&[]), None);
    }

    #[test]
    fn references_are_found_and_must_name_earlier_arms() {
        assert_eq!(
            references("data.synthetic.generator=\"${gan}\""),
            vec!["gan".to_string()]
        );
        assert!(references("train.epochs=3").is_empty());
        assert!(references("model.blocks=[{channels=4}]").is_empty());
        let arm = |name: &str, set: &[&str]| Arm {
            name: name.into(),
            config: "c.toml".into(),
            set: set.iter().map(|s| s.to_string()).collect(),
            about: String::new(),
            metric: None,
            series: None,
            x: None,
        };
        let mut e = ExperimentConfig {
            title: "t".into(),
            seeds: vec![1],
            metric: default_metric(),
            executor: Default::default(),
            arms: vec![arm("gan", &[]), arm("aug", &["x=\"${gan}\""])],
            x_label: None,
        };
        assert!(e.validate().is_ok());
        e.arms.swap(0, 1);
        let err = e.validate().unwrap_err();
        assert!(err.contains("not an earlier arm"), "{err}");
        e.arms = vec![arm("a b", &[])];
        assert!(e.validate().unwrap_err().contains("letters"));
        e.arms = vec![Arm {
            x: Some(0.0),
            ..arm("a", &[])
        }];
        assert!(e.validate().unwrap_err().contains("x must be > 0"));
    }

    #[test]
    fn the_chart_draws_each_series_by_x_from_the_arms_that_have_a_mean() {
        let arm = |name: &str, series: Option<&str>, x: Option<f64>| Arm {
            name: name.into(),
            config: "c.toml".into(),
            set: vec![],
            about: String::new(),
            metric: None,
            series: series.map(String::from),
            x,
        };
        let e = ExperimentConfig {
            title: "t".into(),
            seeds: vec![1],
            metric: default_metric(),
            executor: Default::default(),
            arms: vec![
                arm("cnn-1000", Some("CNN"), Some(1000.0)),
                arm("gan", None, None),
                arm("ssgan-100", Some("SSGAN"), Some(100.0)),
                arm("cnn-100", Some("CNN"), Some(100.0)),
                arm("ssgan-1000", Some("SSGAN"), Some(1000.0)),
            ],
            x_label: None,
        };
        let result = |arm: &Arm, value: Option<f64>| {
            ArmResult::new(
                arm,
                "test_accuracy".into(),
                vec![RunResult {
                    seed: 1,
                    run: arm.name.clone(),
                    value,
                    training_time_s: None,
                    error: None,
                }],
            )
        };
        let values = [Some(0.84), Some(0.5), Some(0.8), Some(0.72), None];
        let results: Vec<ArmResult> = e
            .arms
            .iter()
            .zip(values)
            .map(|(a, v)| result(a, v))
            .collect();
        assert_eq!(
            chart_lines(&e, &results),
            vec![
                ("CNN".to_string(), vec![(100.0, 0.72), (1000.0, 0.84)]),
                ("SSGAN".to_string(), vec![(100.0, 0.8)]),
            ]
        );
    }
}
