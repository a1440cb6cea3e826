//! The command line: argument definitions and what each command prints.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use crate::bench::{self, BenchArgs};
use crate::data::{self, sources};
use crate::device::{self, BackendKind};
use crate::session::{self, TrainArgs};
use crate::train::{FitOptions, Outcome, run};

#[derive(Parser, Debug)]
#[command(
    name = "fovea",
    version,
    about = "Train, compare and use neural-network image recognizers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunOutput {
    /// Artifacts root: runs are written to OUT/NAME.
    #[arg(long, default_value = "artifacts")]
    pub out: PathBuf,
    /// Run folder name (default: <model>-<dataset>-<date>-<time>).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArgs {
    /// TOML config file; it states only what differs from the defaults.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override a config key, e.g. --set train.epochs=20 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Compute backend (overrides `backend` in the config).
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (default: the reference CNN on the built-in sample).
    Train {
        #[command(flatten)]
        config: ConfigArgs,
        /// Folder holding the dataset's files (overrides data.path).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        output: RunOutput,
        /// Print only errors.
        #[arg(long, short)]
        quiet: bool,
        /// Test hook: exit abruptly after this many steps, as a crash would.
        #[arg(long, hide = true)]
        crash_at_step: Option<u64>,
    },
    /// Continue a run from its newest intact checkpoint, exactly where it stopped.
    Resume {
        run: PathBuf,
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, short)]
        quiet: bool,
        #[arg(long, hide = true)]
        crash_at_step: Option<u64>,
    },
    /// Recompute test metrics for a checkpoint of a run.
    Eval {
        run: PathBuf,
        /// best, last, or a step number.
        #[arg(long, default_value = "best")]
        checkpoint: String,
        /// Evaluate on another dataset's test set (same image shape and class count).
        #[arg(long)]
        dataset: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Classify image files with a trained run.
    Predict {
        run: PathBuf,
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[arg(long, default_value = "best")]
        checkpoint: String,
        /// How many classes to show per image.
        #[arg(long, short = 'k', default_value_t = 3)]
        top_k: usize,
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
        #[arg(long)]
        json: bool,
    },
    /// Datasets: where they resolve, and downloading them.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// List the compute backends and what they run on here.
    Devices,
    /// Measure training and inference throughput (images/s).
    Bench {
        #[command(flatten)]
        config: ConfigArgs,
        /// Timed training steps per round.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Timed rounds (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Untimed warm-up steps.
        #[arg(long, default_value_t = 10)]
        warmup: usize,
        /// Inference batch size.
        #[arg(long, default_value_t = 256)]
        infer_batch: usize,
        #[command(flatten)]
        output: RunOutput,
    },
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Where a dataset resolves, its counts and checksums (all datasets when none is named).
    Info {
        #[arg(long)]
        dataset: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Download a dataset from its official location and verify its checksums.
    Download {
        name: String,
        /// Target folder (default: $FOVEA_DATA/<name> or the user cache).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// What `main` should exit with.
pub enum Exit {
    Ok,
    Interrupted,
}

pub fn run(cli: Cli) -> Result<Exit> {
    match cli.command {
        Command::Train {
            config,
            data_dir,
            output,
            quiet,
            crash_at_step,
        } => {
            let done = session::train(TrainArgs {
                config: config.config,
                overrides: config.overrides,
                backend: config.backend,
                data_dir,
                out: output.out,
                name: output.name,
                options: FitOptions {
                    quiet,
                    crash_at_step,
                },
            })?;
            Ok(exit_for(done.outcome))
        }
        Command::Resume {
            run,
            backend,
            data_dir,
            quiet,
            crash_at_step,
        } => {
            let done = session::resume(
                &run,
                backend,
                data_dir.as_deref(),
                FitOptions {
                    quiet,
                    crash_at_step,
                },
            )?;
            Ok(exit_for(done.outcome))
        }
        Command::Eval {
            run,
            checkpoint,
            dataset,
            data_dir,
            backend,
            json,
        } => {
            let (loaded, e) = session::eval(
                &run,
                &checkpoint,
                dataset.as_deref(),
                data_dir.as_deref(),
                backend,
            )?;
            if json {
                let out = serde_json::json!({
                    "checkpoint": loaded.checkpoint.display().to_string(),
                    "test_accuracy": e.accuracy,
                    "test_loss": e.loss,
                    "test_count": e.count,
                    "per_class_accuracy": loaded.meta.classes.iter().zip(e.per_class_accuracy()).map(|(c, a)| (c.clone(), a)).collect::<std::collections::BTreeMap<_, _>>(),
                    "confusion_matrix": e.confusion,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("checkpoint {}", loaded.checkpoint.display());
                println!(
                    "test accuracy {:.4}  loss {:.4}  ({} images)",
                    e.accuracy, e.loss, e.count
                );
                for (c, a) in loaded.meta.classes.iter().zip(e.per_class_accuracy()) {
                    println!("  {c:>14}  {a:.4}");
                }
            }
            Ok(Exit::Ok)
        }
        Command::Predict {
            run,
            images,
            checkpoint,
            top_k,
            backend,
            json,
        } => {
            let loaded = session::load_run(&run, &checkpoint, backend)?;
            let preds = session::predict(&loaded, &images, top_k)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&preds)?);
            } else {
                for p in preds {
                    let top: Vec<String> = p
                        .top
                        .iter()
                        .map(|(c, prob)| format!("{c} {prob:.3}"))
                        .collect();
                    println!("{}: {}", p.file, top.join(", "));
                }
            }
            Ok(Exit::Ok)
        }
        Command::Data { command } => {
            data_command(command)?;
            Ok(Exit::Ok)
        }
        Command::Devices => {
            for (kind, status) in device::describe_all() {
                match status {
                    Ok(s) => println!("{kind:<8} available: {s}"),
                    Err(e) => println!("{kind:<8} unavailable: {e}"),
                }
            }
            Ok(Exit::Ok)
        }
        Command::Bench {
            config,
            steps,
            repeats,
            warmup,
            infer_batch,
            output,
        } => {
            let r = bench::run(BenchArgs {
                config: config.config,
                overrides: config.overrides,
                backend: config.backend,
                steps,
                repeats,
                warmup,
                infer_batch,
            })?;
            println!(
                "{:<8} {:<8} {:>7} {:>6} {:>14} {:>14} {:>10}",
                "model", "backend", "threads", "batch", "train img/s", "infer img/s", "peak MiB"
            );
            println!(
                "{:<8} {:<8} {:>7} {:>6} {:>14.0} {:>14.0} {:>10}",
                r.model,
                r.backend,
                r.threads,
                r.batch_size,
                r.train_images_per_sec,
                r.infer_images_per_sec,
                r.peak_rss_mib
                    .map(|m| format!("{m:.0}"))
                    .unwrap_or("-".into())
            );
            let name = output
                .name
                .unwrap_or_else(|| run::default_name(&format!("bench-{}", r.model), &r.backend));
            let dir = output.out.join(name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            let path = dir.join("bench.json");
            std::fs::write(&path, serde_json::to_string_pretty(&r)?)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(Exit::Ok)
        }
    }
}

fn exit_for(outcome: Outcome) -> Exit {
    match outcome {
        Outcome::Completed => Exit::Ok,
        Outcome::Interrupted => Exit::Interrupted,
    }
}

fn data_command(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Info { dataset, data_dir } => {
            let names: Vec<String> = match dataset {
                Some(n) => {
                    data::check_dataset_name(&n).map_err(|e| anyhow::anyhow!("--dataset {e}"))?;
                    vec![n]
                }
                None => std::iter::once("sample".to_string())
                    .chain(sources::CATALOG.iter().map(|s| s.name.to_string()))
                    .collect(),
            };
            let single = names.len() == 1;
            for name in names {
                let raw = match name.as_str() {
                    "sample" => sources::sample(),
                    "folder" => match &data_dir {
                        Some(d) => data::folder::load(d, 0, 0.2, 42),
                        None => bail!("--dataset folder needs --data-dir"),
                    },
                    n => {
                        let spec = sources::catalog(n).expect("checked");
                        match sources::locate(spec, data_dir.as_deref()) {
                            Ok(dir) => sources::load_dir(spec, &dir),
                            Err(e) if single => Err(e),
                            Err(_) => {
                                println!(
                                    "{name}: not found (fovea data info --dataset {name} says where it was looked for)"
                                );
                                continue;
                            }
                        }
                    }
                }?;
                println!(
                    "{name}: {} — {} train + {} test images of {}, {} classes",
                    raw.origin,
                    raw.train.len(),
                    raw.test.len(),
                    raw.train.shape,
                    raw.classes.len()
                );
                if single {
                    println!("  classes: {}", raw.classes.join(", "));
                    for f in &raw.files {
                        println!("  {}  {} bytes  sha256 {}", f.path, f.bytes, f.sha256);
                    }
                }
            }
            Ok(())
        }
        DataCommand::Download { name, dir } => {
            let Some(spec) = sources::catalog(&name) else {
                bail!(
                    "`{name}` cannot be downloaded; downloadable: {}",
                    sources::CATALOG
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let dir = match dir {
                Some(d) => d,
                None => sources::download_dir(&name)?,
            };
            sources::download(spec, &dir, false)?;
            println!("{name}: downloaded and verified into {}", dir.display());
            Ok(())
        }
    }
}
