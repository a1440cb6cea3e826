//! The command line: argument definitions, and what each command prints. The work itself is
//! done in `commands` (and `data` for `fovea data`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use crate::commands::bench::{self, BenchArgs};
use crate::commands::compare;
use crate::commands::executor::{ExecutorFlags, ExecutorKind, OnInterrupt};
use crate::commands::experiment;
use crate::commands::repair;
use crate::commands::session::{self, TrainArgs};
use crate::commands::{export, generate, predict, runs, serve};
use crate::config;
use crate::data::{self, sources};
use crate::device::{self, BackendKind};
use crate::train::{FitOptions, Outcome};

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
    Train(TrainCmd),
    /// Continue a run from its newest intact checkpoint, exactly where it stopped.
    Resume(ResumeCmd),
    /// Recompute test metrics for a checkpoint of a run.
    Eval(EvalCmd),
    /// Classify image files with a trained run.
    Predict(PredictCmd),
    /// Write a run's weights as a file other tools read (safetensors, PyTorch's names).
    Export(ExportCmd),
    /// Serve a run's classifier over HTTP: POST /predict, GET /health, GET /metrics.
    Serve(ServeCmd),
    /// Draw labelled images from a GAN run into an image folder (or IDX files).
    Generate(GenerateCmd),
    /// Write damaged copies of images: noise, salt-and-pepper, a missing square, low resolution.
    Damage(DamageCmd),
    /// Repair damaged images with a trained restore run (or, with --panel, damage clean ones
    /// and show clean | damaged | classical | restored).
    Restore(RestoreCmd),
    /// Datasets: where they resolve, and downloading them.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// List the compute backends and what they run on here.
    Devices,
    /// Measure training and inference throughput (images/s).
    Bench(BenchCmd),
    /// Train every arm of an experiment file once per seed (reusing finished runs) and write
    /// the table of results (mean ± spread over the seeds).
    Experiment(ExperimentCmd),
    /// Train (or reuse) every model a compare file lists on the same data, and write the
    /// comparison: accuracy, train–test gap, time, size, memory, per-class accuracy, charts and,
    /// with train_sizes, learning curves (the survey's CNN-versus-SVM experiment).
    Compare(CompareCmd),
}

#[derive(clap::Args, Debug)]
pub struct CompareCmd {
    /// The compare file (e.g. config/compare.toml).
    #[arg(long, short)]
    config: PathBuf,
    #[command(flatten)]
    runs: FileRunOptions,
}

#[derive(clap::Args, Debug)]
pub struct ExperimentCmd {
    /// The experiment file (e.g. config/experiments/gan-augment.toml).
    file: PathBuf,
    #[command(flatten)]
    runs: FileRunOptions,
}

/// What `experiment` and `compare` apply to every run their file lists.
#[derive(clap::Args, Debug)]
pub struct FileRunOptions {
    /// Override a config key in every run, e.g. --set train.epochs=2 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Artifacts root: the results are written to OUT/NAME, each run in a folder inside it.
    #[arg(long, default_value = "artifacts")]
    out: PathBuf,
    /// Results folder name (default: the file's name without .toml).
    #[arg(long)]
    name: Option<String>,
    #[arg(long, short)]
    quiet: bool,
    /// Where the trainings run: here (`local`) or as Slurm jobs (`slurm`); the file's
    /// `[executor]`, else local.
    #[arg(long, value_enum)]
    executor: Option<ExecutorKind>,
    /// local: trainings at once, each on its share of the threads.
    #[arg(long)]
    jobs: Option<usize>,
    /// slurm: CPUs of each job.
    #[arg(long)]
    cpus_per_task: Option<usize>,
    /// slurm: memory of each job (`sbatch --mem`, e.g. 4G).
    #[arg(long)]
    mem: Option<String>,
    /// slurm: time limit of each job (e.g. 2:00:00).
    #[arg(long)]
    time: Option<String>,
    /// slurm: the partition.
    #[arg(long)]
    partition: Option<String>,
    /// slurm: one more sbatch argument, e.g. --sbatch-arg=--gres=gpu:1 (repeatable).
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
    /// slurm: seconds between two looks at the queue.
    #[arg(long)]
    poll_seconds: Option<f64>,
    /// slurm: on Ctrl-C or SIGTERM, cancel the jobs or leave them running (default: asked on a
    /// terminal, left otherwise).
    #[arg(long, value_enum)]
    on_interrupt: Option<OnInterrupt>,
}

impl FileRunOptions {
    fn with_file(self, file: PathBuf) -> experiment::FileArgs {
        experiment::FileArgs {
            file,
            overrides: self.overrides,
            backend: self.backend,
            data_dir: self.data_dir,
            out: self.out,
            name: self.name,
            quiet: self.quiet,
            executor: ExecutorFlags {
                kind: self.executor,
                jobs: self.jobs,
                cpus_per_task: self.cpus_per_task,
                mem: self.mem,
                time: self.time,
                partition: self.partition,
                sbatch_args: self.sbatch_args,
                poll_seconds: self.poll_seconds,
                on_interrupt: self.on_interrupt,
            },
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct TrainCmd {
    #[command(flatten)]
    config: ConfigArgs,
    /// Folder holding the dataset's files (overrides data.path).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    output: RunOutput,
    /// Print only errors and warnings.
    #[arg(long, short)]
    quiet: bool,
    /// Test hook: exit abruptly after this many steps, as a crash would.
    #[arg(long, hide = true)]
    crash_at_step: Option<u64>,
}

#[derive(clap::Args, Debug)]
pub struct ResumeCmd {
    run: PathBuf,
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, short)]
    quiet: bool,
    #[arg(long, hide = true)]
    crash_at_step: Option<u64>,
}

#[derive(clap::Args, Debug)]
pub struct EvalCmd {
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
}

#[derive(clap::Args, Debug)]
pub struct PredictCmd {
    run: PathBuf,
    #[arg(required = true)]
    images: Vec<PathBuf>,
    #[arg(long, default_value = "best")]
    checkpoint: String,
    /// How many classes to show per image.
    #[arg(long, short = 'k', default_value_t = 3)]
    top_k: usize,
    /// Spiking models: stop at the first time step where the leading class's probability
    /// exceeds the runner-up's by this margin, and say at which step.
    #[arg(long, value_name = "MARGIN")]
    exit_margin: Option<f64>,
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ExportCmd {
    run: PathBuf,
    /// The file's format.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// The file to write (replaced only once the new one is complete).
    #[arg(long)]
    out: PathBuf,
    /// `best`, `last` or a step number.
    #[arg(long, default_value = "best")]
    checkpoint: String,
    /// ONNX: a fixed batch size instead of any (for kinds whose forward pass depends on it).
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub struct ServeCmd {
    run: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[arg(long, default_value = "best")]
    checkpoint: String,
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// Spiking models: read each decision at the first time step where the top two
    /// probabilities differ by this margin.
    #[arg(long, value_name = "MARGIN")]
    exit_margin: Option<f64>,
    /// The most images classified together.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// How long the first image of a batch waits for others, in milliseconds.
    #[arg(long, default_value_t = 2)]
    max_wait_ms: u64,
    /// Images accepted and not yet classified, at most; beyond it, requests get 503.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    max_body: usize,
    /// The most pixels (width × height) an image may have.
    #[arg(long, default_value_t = 4096 * 4096)]
    max_pixels: u64,
    /// How long a request's headers, and then its body, may each take to arrive, in seconds.
    #[arg(long, default_value_t = 10)]
    read_timeout: u64,
    /// Test hook: hold each batch this long before classifying it.
    #[arg(long, hide = true)]
    hold_ms: Option<u64>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ExportFormat {
    /// The whole inference path of a classifier, pixels in [0, 255] to class probabilities, as
    /// an ONNX model (opset 18, any batch size), with classes and input shape in its metadata.
    Onnx,
    /// The weights, named and laid out as PyTorch's, with classes, input shape, normalization
    /// and config in the metadata.
    Safetensors,
}

#[derive(clap::Args, Debug)]
pub struct GenerateCmd {
    run: PathBuf,
    /// Images per class.
    #[arg(long, default_value_t = 100)]
    per_class: usize,
    /// A new (or empty) folder to write into.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "folder")]
    format: generate::GenerateFormat,
    /// best, last, or a step number.
    #[arg(long, default_value = "best")]
    checkpoint: String,
    /// Noise seed (default: the run's seed).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
}

#[derive(clap::Args, Debug)]
pub struct DamageCmd {
    /// Image files (PNG, JPEG, ...), damaged at their own size.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// What to do, repeatable: noise[=σ] (0.3), salt-pepper[=share] (0.05), hole[=side] (14),
    /// lowres[=k] (2).
    #[arg(long, required = true, value_name = "KIND[=VALUE]")]
    kind: Vec<String>,
    /// Where the hole goes.
    #[arg(long, value_enum, default_value = "center")]
    hole_at: crate::restore::HolePlace,
    /// A new (or empty) folder to write into.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args, Debug)]
pub struct RestoreCmd {
    /// A restore run folder.
    run: PathBuf,
    /// Damaged image files (a hole's mask beside each as <stem>.mask.png); with --panel, clean ones.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// A new (or empty) folder to write into.
    #[arg(long)]
    out: PathBuf,
    /// The images are clean: damage them as the run does, repair them, and write
    /// <stem>.panel.png (clean | damaged | classical | restored) with the PSNR of each.
    #[arg(long)]
    panel: bool,
    /// best, last, or a step number.
    #[arg(long, default_value = "best")]
    checkpoint: String,
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
}

#[derive(clap::Args, Debug)]
pub struct BenchCmd {
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
    /// Single-image inferences timed for the latency (median and p95).
    #[arg(long, default_value_t = 200)]
    latency_runs: usize,
    /// Also train N steps from fresh weights on the training set's first N batches, in order,
    /// and record each step's loss in bench.json (to compare with bench/pytorch_reference.py).
    #[arg(long, default_value_t = 0)]
    loss_steps: usize,
    /// Bench these kinds, each in a process of its own with `model.kind` set: `all` or a
    /// comma-separated list (cnn,rnn,...).
    #[arg(long)]
    kinds: Option<String>,
    #[command(flatten)]
    output: RunOutput,
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
    /// Ctrl-C stopped a run after its checkpoint (exit status 130).
    Interrupted,
    /// The crash test hook stopped a run (exit status 137, as after `kill -9`).
    Crashed,
}

pub fn run(cli: Cli) -> Result<Exit> {
    match cli.command {
        Command::Train(c) => train(c),
        Command::Serve(c) => {
            let options = serve::ServeOptions {
                host: c.host,
                port: c.port,
                checkpoint: c.checkpoint,
                backend: c.backend,
                exit_margin: c.exit_margin,
                max_batch: c.max_batch,
                max_wait: Duration::from_millis(c.max_wait_ms),
                queue: c.queue,
                max_body: c.max_body,
                max_pixels: c.max_pixels,
                read_timeout: Duration::from_secs(c.read_timeout),
                hold: c.hold_ms.map(Duration::from_millis),
            };
            serve::serve(&c.run, options)?;
            Ok(Exit::Ok)
        }
        Command::Export(c) => {
            let done = match c.format {
                ExportFormat::Safetensors if c.batch.is_some() => {
                    bail!("--batch applies to --format onnx")
                }
                ExportFormat::Safetensors => export::safetensors(&c.run, &c.checkpoint, &c.out)?,
                ExportFormat::Onnx => export::onnx(&c.run, &c.checkpoint, &c.out, c.batch)?,
            };
            println!(
                "wrote {} ({}, {}) from {}",
                done.path.display(),
                done.contents,
                device::human_bytes(done.bytes.into()),
                done.checkpoint.display()
            );
            Ok(Exit::Ok)
        }
        Command::Resume(c) => {
            let options = FitOptions {
                quiet: c.quiet,
                crash_at_step: c.crash_at_step,
            };
            let done = session::resume(&c.run, c.backend, c.data_dir.as_deref(), options)?;
            Ok(exit_for(done.outcome))
        }
        Command::Eval(c) if !config::run_config(&c.run)?.model.is_classifier() => {
            if c.dataset.is_some() || c.data_dir.is_some() {
                bail!(
                    "--dataset and --data-dir apply to classifier runs; this run is evaluated on its own test set"
                );
            }
            let (checkpoint, report) = session::eval_task(&c.run, &c.checkpoint, c.backend)?;
            if c.json {
                print_report_json(&checkpoint, report)?;
            } else {
                println!("checkpoint {}", checkpoint.display());
                for (k, v) in &report.metrics {
                    println!("  test {k:<18} {v:.4}");
                }
                println!("  ({} test images)", report.count);
            }
            Ok(Exit::Ok)
        }
        Command::Eval(c) => {
            let (loaded, e) = predict::eval(
                &c.run,
                &c.checkpoint,
                c.dataset.as_deref(),
                c.data_dir.as_deref(),
                c.backend,
            )?;
            print_eval(&loaded, &e, c.json)?;
            Ok(Exit::Ok)
        }
        Command::Predict(c) => {
            let loaded = runs::load_run(&c.run, &c.checkpoint, c.backend)?;
            let preds = predict::predict(&loaded, &c.images, c.top_k, c.exit_margin)?;
            print_predictions(&preds, c.json)?;
            Ok(Exit::Ok)
        }
        Command::Generate(c) => {
            let g = generate::generate(
                &c.run,
                &c.checkpoint,
                c.per_class,
                &c.out,
                c.format,
                c.seed,
                c.backend,
            )?;
            println!(
                "wrote {} images ({} per class, {} classes) from {} into {}",
                g.images,
                c.per_class,
                g.classes.len(),
                g.checkpoint.display(),
                c.out.display()
            );
            Ok(Exit::Ok)
        }
        Command::Damage(c) => {
            let cfg = repair::parse_kinds(&c.kind, c.hole_at)?;
            let n = repair::damage_files(&cfg, &c.images, &c.out, c.seed)?;
            println!("wrote {n} files into {}", c.out.display());
            Ok(Exit::Ok)
        }
        Command::Restore(c) => {
            let r = repair::Restorer::read(&c.run, &c.checkpoint, c.backend)?;
            let done = repair::restore_files(&r, &c.images, &c.out, c.panel)?;
            for d in &done {
                match d.psnr {
                    Some([damaged, classical, restored]) => println!(
                        "{} → {}  PSNR damaged {damaged:.2}, classical {classical:.2}, restored {restored:.2} dB",
                        d.file, d.written
                    ),
                    None => println!("{} → {}", d.file, d.written),
                }
            }
            println!(
                "repaired {} images with {}",
                done.len(),
                r.checkpoint.display()
            );
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
        Command::Bench(c) => bench(c),
        Command::Compare(c) => {
            let done = compare::run(c.runs.with_file(c.config))?;
            finish_file_runs(&done, "comparison")
        }
        Command::Experiment(c) => {
            let done = experiment::run(c.runs.with_file(c.file))?;
            finish_file_runs(&done, "experiment")
        }
    }
}

/// The end of `experiment` and `compare`: the table, what was written, and the exit: 130 when
/// interrupted, an error when a run failed.
fn finish_file_runs(done: &experiment::Finished, what: &str) -> Result<Exit> {
    println!("{}", done.table);
    println!("wrote {}: {}", done.dir.display(), done.written.join(", "));
    if done.interrupted {
        println!("interrupted; run the same command again to continue where it stopped");
        return Ok(Exit::Interrupted);
    }
    if done.failed > 0 {
        bail!(
            "{} of the {what}'s runs failed (see the table); run the same command again to retry them",
            done.failed
        );
    }
    Ok(Exit::Ok)
}

fn train(c: TrainCmd) -> Result<Exit> {
    let done = session::train(TrainArgs {
        config: c.config.config,
        overrides: c.config.overrides,
        backend: c.config.backend,
        data_dir: c.data_dir,
        out: c.output.out,
        name: c.output.name,
        options: FitOptions {
            quiet: c.quiet,
            crash_at_step: c.crash_at_step,
        },
    })?;
    Ok(exit_for(done.outcome))
}

fn bench(c: BenchCmd) -> Result<Exit> {
    let args = BenchArgs {
        config: c.config.config,
        overrides: c.config.overrides,
        backend: c.config.backend,
        steps: c.steps,
        repeats: c.repeats,
        warmup: c.warmup,
        infer_batch: c.infer_batch,
        latency_runs: c.latency_runs,
        loss_steps: c.loss_steps,
    };
    let file = match &c.kinds {
        Some(kinds) => {
            let kinds = bench::parse_kinds(kinds)?;
            let name = c
                .output
                .name
                .clone()
                .unwrap_or_else(|| crate::train::run::default_name("bench-kinds", "all"));
            let file = bench::run_kinds(&args, &kinds, &c.output.out.join(&name))?;
            let path = bench::write(&file, &c.output.out, Some(name))?;
            println!("{}\nwrote {}", bench::table(&file), path.display());
            if file.results.is_empty() {
                bail!("no kind could be benched (see the table above)");
            }
            return Ok(Exit::Ok);
        }
        None => {
            let machine = bench::machine();
            let result = bench::run(&args, &machine)?;
            bench::BenchFile::new(machine, vec![result], vec![])
        }
    };
    println!("{}", bench::table(&file));
    let path = bench::write(&file, &c.output.out, c.output.name)?;
    println!("wrote {}", path.display());
    Ok(Exit::Ok)
}

fn exit_for(outcome: Outcome) -> Exit {
    match outcome {
        Outcome::Completed => Exit::Ok,
        Outcome::Interrupted => Exit::Interrupted,
        Outcome::Crashed => Exit::Crashed,
    }
}

/// `eval --json`: the checkpoint, its test metrics as `test_<metric>`, the image count and the
/// task's details (the keys `summary.json` uses).
fn print_report_json(checkpoint: &std::path::Path, report: crate::train::Report) -> Result<()> {
    let mut out = serde_json::Map::new();
    out.insert("checkpoint".into(), checkpoint.display().to_string().into());
    for (k, v) in &report.metrics {
        out.insert(format!("test_{k}"), (*v).into());
    }
    out.insert("test_count".into(), report.count.into());
    out.extend(report.details);
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn print_eval(
    loaded: &runs::Loaded,
    e: &crate::tasks::classify::Evaluation,
    json: bool,
) -> Result<()> {
    let classes = &loaded.meta.classes;
    let report = e.report(classes);
    if json {
        print_report_json(&loaded.checkpoint, report)?;
    } else {
        println!("checkpoint {}", loaded.checkpoint.display());
        println!(
            "test accuracy {:.4}  loss {:.4}  ({} images)",
            e.accuracy, e.loss, e.count
        );
        for (c, a) in classes.iter().zip(e.per_class_accuracy()) {
            println!("  {c:>14}  {a:.4}");
        }
        if let Some(s) = &e.spiking {
            let n = e.count.max(1) as f64;
            let acc: Vec<String> = s
                .correct_per_step
                .iter()
                .enumerate()
                .map(|(t, &c)| format!("{}:{:.4}", t + 1, c as f64 / n))
                .collect();
            println!("accuracy after time step t  {}", acc.join("  "));
            let m = &report.metrics;
            println!(
                "mean decision step {:.2} of {}  V4 rate {:.4}  output rate {:.4}  spikes per image {:.1}",
                m["decision_step"],
                s.correct_per_step.len(),
                m["v4_rate"],
                m["output_rate"],
                m["spikes_per_image"]
            );
        }
    }
    Ok(())
}

fn print_predictions(preds: &[predict::Prediction], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(preds)?);
        return Ok(());
    }
    for p in preds {
        let top: Vec<String> = p
            .top
            .iter()
            .map(|(c, prob)| format!("{c} {prob:.3}"))
            .collect();
        match (p.decided_at_step, p.steps) {
            (Some(t), Some(steps)) => {
                println!(
                    "{}: {}  (decided at step {t} of {steps})",
                    p.file,
                    top.join(", ")
                )
            }
            _ => println!("{}: {}", p.file, top.join(", ")),
        }
    }
    Ok(())
}

fn data_command(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Info { dataset, data_dir } => data_info(dataset, data_dir),
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

/// `fovea data info`: where each dataset resolves; with one named, its classes and files.
fn data_info(dataset: Option<String>, data_dir: Option<PathBuf>) -> Result<()> {
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
        let unlabelled = match &raw.unlabelled {
            Some(u) => format!(" + {} unlabelled", u.len()),
            None => String::new(),
        };
        println!(
            "{name}: {} — {} train{unlabelled} + {} test images of {}, {} classes",
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
