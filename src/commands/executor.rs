//! Where the trainings of `compare` and `experiment` run. Each training is a run folder inside
//! the command's folder, brought to its end by a child `fovea` (`train`, or `resume` where an
//! interrupted run is there; a finished run is reused). `local`: here, `jobs` at a time, each
//! child with its share of the threads. `slurm`: each training a Slurm job (`sbatch`), followed
//! with `squeue` and `scontrol` until all have ended; the job ids are kept in the folder, so the
//! same command run again attaches to jobs still queued or running and submits only what is
//! missing. A job script resumes the run where it finds one, so a job preempted or requeued
//! (SIGTERM checkpoints) goes on from its last checkpoint.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::commands::{child, session};
use crate::config::Config;
use crate::{fsio, run_files, train};

/// One training: a run folder `run` inside the command's folder, of `config` (read from
/// `config_file` with `overrides`), started only once every training in `needs` has finished.
#[derive(Debug, Clone)]
pub struct Training {
    pub run: String,
    pub config: Config,
    pub config_file: PathBuf,
    pub overrides: Vec<String>,
    pub needs: Vec<usize>,
    /// What it is, in words ("model `cnn`").
    pub what: String,
}

/// How a training ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// Its finished run folder.
    Done(PathBuf),
    Failed(String),
    /// Not brought to its end: the command was interrupted (its jobs may still be running).
    Stopped,
}

impl Ended {
    /// The finished run's folder, or why there is none.
    pub fn folder(&self) -> Result<&Path> {
        match self {
            Ended::Done(folder) => Ok(folder),
            Ended::Failed(why) => Err(anyhow::anyhow!("{why}")),
            Ended::Stopped => Err(anyhow::anyhow!("interrupted")),
        }
    }
}

/// Which executor: `[executor]` of a compare or experiment file, then the command line.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorConfig {
    pub kind: ExecutorKind,
    /// `local`: trainings at once, each on its share of the threads.
    pub jobs: usize,
    /// `slurm`: CPUs of each job (also its threads).
    pub cpus_per_task: usize,
    /// `slurm`: memory of each job, as `sbatch --mem` takes it (`4G`); none: the partition's.
    pub mem: Option<String>,
    /// `slurm`: time limit of each job (`2:00:00`); none: the partition's.
    pub time: Option<String>,
    pub partition: Option<String>,
    /// `slurm`: more `sbatch` arguments, each as one string (`--gres=gpu:1`).
    pub sbatch_args: Vec<String>,
    /// `slurm`: seconds between two looks at the queue.
    pub poll_seconds: f64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            kind: ExecutorKind::Local,
            jobs: 1,
            cpus_per_task: 2,
            mem: None,
            time: None,
            partition: None,
            sbatch_args: Vec::new(),
            poll_seconds: 10.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    Local,
    Slurm,
}

/// On Ctrl-C or SIGTERM while Slurm jobs run: cancel them, or leave them running (run the same
/// command again to attach). Unset: asked on a terminal, left otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnInterrupt {
    Cancel,
    Leave,
}

/// The command line's executor settings; each given one replaces the file's.
#[derive(Debug, Clone, Default)]
pub struct ExecutorFlags {
    pub kind: Option<ExecutorKind>,
    pub jobs: Option<usize>,
    pub cpus_per_task: Option<usize>,
    pub mem: Option<String>,
    pub time: Option<String>,
    pub partition: Option<String>,
    /// Added to the file's.
    pub sbatch_args: Vec<String>,
    pub poll_seconds: Option<f64>,
    pub on_interrupt: Option<OnInterrupt>,
}

impl ExecutorConfig {
    /// The file's settings with the command line's over them.
    pub fn with(&self, f: &ExecutorFlags) -> Self {
        let mut x = self.clone();
        x.kind = f.kind.unwrap_or(x.kind);
        x.jobs = f.jobs.unwrap_or(x.jobs);
        x.cpus_per_task = f.cpus_per_task.unwrap_or(x.cpus_per_task);
        x.mem = f.mem.clone().or(x.mem);
        x.time = f.time.clone().or(x.time);
        x.partition = f.partition.clone().or(x.partition);
        x.sbatch_args.extend(f.sbatch_args.iter().cloned());
        x.poll_seconds = f.poll_seconds.unwrap_or(x.poll_seconds);
        x
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.jobs == 0 {
            return Err("executor.jobs: at least 1".into());
        }
        if self.cpus_per_task == 0 {
            return Err("executor.cpus_per_task: at least 1".into());
        }
        if !(self.poll_seconds.is_finite() && self.poll_seconds > 0.0) {
            return Err(format!(
                "executor.poll_seconds: a positive number of seconds (got {})",
                self.poll_seconds
            ));
        }
        Ok(())
    }
}

/// Brings every training to its end with the executor the file's `[executor]` and the command
/// line's `flags` over it name; `label` names the command in what it prints. The result has one
/// entry per training, in order.
pub fn run_all(
    file: &ExecutorConfig,
    flags: &ExecutorFlags,
    dir: &Path,
    trainings: &[Training],
    label: &str,
    quiet: bool,
) -> Result<Vec<Ended>> {
    let x = &file.with(flags);
    x.validate().map_err(anyhow::Error::msg)?;
    let mut ended: Vec<Option<Ended>> = vec![None; trainings.len()];
    for (t, e) in trainings.iter().zip(&mut ended) {
        let folder = dir.join(&t.run);
        if folder.join(run_files::RUN_JSON).is_file()
            && let Err(err) = session::check_same_config(&folder, &t.config, label)
        {
            *e = Some(Ended::Failed(format!("{err:#}")));
        } else if folder.join(run_files::SUMMARY).is_file() {
            eprintln!("{label}: reusing {} (finished before)", folder.display());
            *e = Some(Ended::Done(folder));
        }
    }
    match x.kind {
        ExecutorKind::Local => local(x.jobs, dir, trainings, &mut ended, label, quiet)?,
        ExecutorKind::Slurm => slurm::run(
            x,
            flags.on_interrupt,
            dir,
            trainings,
            &mut ended,
            label,
            quiet,
        )?,
    }
    Ok(ended
        .into_iter()
        .map(|e| e.unwrap_or(Ended::Stopped))
        .collect())
}

/// The trainings that can start now: not ended, not started, every need done (or, with
/// `queued_after`, started: a Slurm job waits for its needs' jobs). Those with a need that
/// failed end as skipped.
fn ready(
    trainings: &[Training],
    ended: &mut [Option<Ended>],
    started: &[bool],
    queued_after: bool,
) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, t) in trainings.iter().enumerate() {
        if ended[i].is_some() || started[i] {
            continue;
        }
        let failed: Vec<&str> = t
            .needs
            .iter()
            .filter(|&&n| matches!(ended[n], Some(Ended::Failed(_))))
            .map(|&n| trainings[n].run.as_str())
            .collect();
        if !failed.is_empty() {
            ended[i] = Some(Ended::Failed(format!(
                "skipped: needs {}",
                failed.join(", ")
            )));
        } else if t
            .needs
            .iter()
            .all(|&n| matches!(ended[n], Some(Ended::Done(_))) || (queued_after && started[n]))
        {
            out.push(i);
        }
    }
    out
}

/// The child command that brings `t`'s run to its end: `resume` where a run is there, `train`
/// otherwise.
fn command(t: &Training, dir: &Path, quiet: bool) -> Result<Command> {
    let mut cmd = child::fovea()?;
    cmd.args(arguments(
        t,
        dir,
        dir.join(&t.run).join(run_files::RUN_JSON).is_file(),
    ));
    if quiet {
        cmd.arg("--quiet");
    }
    Ok(cmd)
}

/// `fovea`'s arguments for `t`: `resume FOLDER …` when `resume`, `train --config …` otherwise.
fn arguments(t: &Training, dir: &Path, resume: bool) -> Vec<String> {
    let folder = dir.join(&t.run);
    let mut a: Vec<String> = Vec::new();
    if resume {
        a.extend(["resume".into(), folder.display().to_string()]);
        if let Some(d) = &t.config.data.path {
            a.extend(["--data-dir".into(), d.display().to_string()]);
        }
        a.extend(["--backend".into(), t.config.backend.to_string()]);
    } else {
        a.extend([
            "train".into(),
            "--config".into(),
            t.config_file.display().to_string(),
            "--out".into(),
            dir.display().to_string(),
            "--name".into(),
            t.run.clone(),
        ]);
        for o in &t.overrides {
            a.extend(["--set".into(), o.clone()]);
        }
    }
    a
}

/// Whether the run ended with its summary written; else why not, with the child's last error.
fn outcome(dir: &Path, t: &Training, last_error: Option<String>) -> Ended {
    let folder = dir.join(&t.run);
    if folder.join(run_files::SUMMARY).is_file() {
        return Ended::Done(folder);
    }
    let status = run_files::read_info(&folder)
        .map(|i| i.status)
        .unwrap_or_else(|_| "no run folder".into());
    Ended::Failed(format!(
        "training did not finish ({status}){}",
        last_error.map(|l| format!(": {l}")).unwrap_or_default()
    ))
}

/// `jobs` trainings at a time here, each in a child `fovea` on `threads / jobs` threads.
fn local(
    jobs: usize,
    dir: &Path,
    trainings: &[Training],
    ended: &mut [Option<Ended>],
    label: &str,
    quiet: bool,
) -> Result<()> {
    let threads = (crate::device::threads() / jobs).max(1);
    let mut started = vec![false; trainings.len()];
    let (done, finished) = std::sync::mpsc::channel::<(usize, Result<Option<String>>)>();
    std::thread::scope(|scope| -> Result<()> {
        let mut running = 0;
        loop {
            if !train::interrupted() {
                for i in ready(trainings, ended, &started, false) {
                    if running == jobs {
                        break;
                    }
                    let t = &trainings[i];
                    let mut cmd = command(t, dir, quiet)?;
                    if jobs > 1 {
                        cmd.env("RAYON_NUM_THREADS", threads.to_string());
                    }
                    let folder = dir.join(&t.run);
                    let share = if jobs > 1 {
                        format!(" ({threads} threads)")
                    } else {
                        String::new()
                    };
                    if folder.join(run_files::RUN_JSON).is_file() {
                        eprintln!(
                            "{label}: resuming the interrupted run {}{share}",
                            folder.display()
                        );
                    } else {
                        eprintln!(
                            "{label}: training {} into {}{share}",
                            t.what,
                            folder.display()
                        );
                    }
                    started[i] = true;
                    running += 1;
                    let done = done.clone();
                    scope.spawn(move || {
                        let _ = done.send((i, child::run(cmd)));
                    });
                }
            }
            if running == 0 {
                return Ok(());
            }
            let (i, result) = finished
                .recv()
                .context("a training's thread ended without a word")?;
            running -= 1;
            let last_error = result?;
            // an interrupted child checkpointed: its run is resumed by the same command again
            ended[i] = Some(match outcome(dir, &trainings[i], last_error) {
                Ended::Failed(_) if train::interrupted() => Ended::Stopped,
                Ended::Failed(why) => {
                    eprintln!("{label}: {} failed: {why}", trainings[i].run);
                    Ended::Failed(why)
                }
                e => e,
            });
        }
    })
}

mod slurm {
    //! The Slurm executor: a job per training, followed until all have ended.

    use super::*;

    /// The job ids of the folder's trainings, by run (`slurm/jobs.json`).
    type Jobs = BTreeMap<String, String>;

    fn jobs_file(dir: &Path) -> PathBuf {
        dir.join("slurm").join("jobs.json")
    }

    fn log_file(dir: &Path, run: &str) -> PathBuf {
        dir.join("slurm").join(format!("{run}.log"))
    }

    /// Runs a Slurm command; its standard output, or an error naming the command and what it
    /// said.
    fn slurm(program: &str, args: &[String]) -> Result<String> {
        let out = Command::new(program).args(args).output().with_context(|| {
            format!("cannot run `{program}`: is Slurm installed here (sbatch, squeue, scontrol, scancel)?")
        })?;
        if !out.status.success() {
            bail!(
                "`{program} {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The job's state while Slurm knows it: `squeue`, then, for a job that has left the queue,
    /// `scontrol show job` (for `MinJobAge` after its end) and the accounting database
    /// (`sacct`, where the cluster keeps one); `None` once it knows it no more.
    fn state(id: &str) -> Option<String> {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let first_word = |s: String| s.split_whitespace().next().map(String::from);
        slurm("squeue", &args(&["-h", "-j", id, "-o", "%T"]))
            .ok()
            .and_then(first_word)
            .or_else(|| {
                let shown = slurm("scontrol", &args(&["show", "job", id])).ok()?;
                shown
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("JobState="))
                    .map(String::from)
            })
            .or_else(|| {
                slurm("sacct", &args(&["-n", "-X", "-P", "-j", id, "-o", "State"]))
                    .ok()
                    .and_then(first_word)
            })
    }

    /// Whether a job in `state` has yet to end.
    fn active(state: &str) -> bool {
        matches!(
            state,
            "PENDING"
                | "CONFIGURING"
                | "RUNNING"
                | "COMPLETING"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESIZING"
                | "SUSPENDED"
                | "STOPPED"
                | "SIGNALING"
                | "STAGE_OUT"
        )
    }

    /// The job script of `t`: it checks that the run folder and fovea are there (on storage
    /// the nodes share), then trains, or resumes the run it finds (after a requeue).
    fn script(t: &Training, dir: &Path, quiet: bool, cpus: usize) -> Result<String> {
        let exe = std::env::current_exe().context("cannot find the fovea executable")?;
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let line = |args: Vec<String>| {
            let mut words: Vec<String> = std::iter::once(exe.display().to_string())
                .chain(args)
                .map(|a| quote(&a))
                .collect();
            if quiet {
                words.push("--quiet".into());
            }
            words.join(" ")
        };
        let folder = dir.join(&t.run);
        // the paths below may be relative to where the command was run
        let here = std::env::current_dir().context("cannot read the current folder")?;
        Ok(format!(
            "#!/bin/sh\n\
             # {what}, written by fovea: resumes the run where it finds one.\n\
             export RAYON_NUM_THREADS={cpus}\n\
             cd {here} || {{ echo \"error: {here_plain} is not on this node: run folders must be on storage the nodes share\"; exit 2; }}\n\
             [ -d {dir} ] || {{ echo \"error: {dir_plain} is not on this node: run folders must be on storage the nodes share\"; exit 2; }}\n\
             [ -x {exe} ] || {{ echo \"error: {exe_plain} is not on this node: fovea must be on storage the nodes share\"; exit 2; }}\n\
             if [ -f {run_json} ]; then\n  exec {resume}\nelse\n  exec {train}\nfi\n",
            what = t.what,
            here = quote(&here.display().to_string()),
            here_plain = here.display(),
            dir = quote(&dir.display().to_string()),
            dir_plain = dir.display(),
            exe = quote(&exe.display().to_string()),
            exe_plain = exe.display(),
            run_json = quote(&folder.join(run_files::RUN_JSON).display().to_string()),
            resume = line(arguments(t, dir, true)),
            train = line(arguments(t, dir, false)),
        ))
    }

    /// Submits `t`'s job after the jobs `after`; its id.
    fn submit(
        x: &ExecutorConfig,
        t: &Training,
        dir: &Path,
        after: &[String],
        quiet: bool,
    ) -> Result<String> {
        let path = dir.join("slurm").join(format!("{}.sh", t.run));
        fsio::write_atomic(&path, script(t, dir, quiet, x.cpus_per_task)?.as_bytes())?;
        let mut args: Vec<String> = vec![
            "--parsable".into(),
            format!("--job-name=fovea-{}", t.run),
            format!("--output={}", log_file(dir, &t.run).display()),
            "--open-mode=append".into(),
            format!("--cpus-per-task={}", x.cpus_per_task),
            "--requeue".into(),
            // 60 s before its time limit, SIGTERM to the batch shell, which is fovea (`exec`):
            // it checkpoints and stops (preemption and scancel send SIGTERM anyway)
            "--signal=B:TERM@60".into(),
        ];
        if let Some(m) = &x.mem {
            args.push(format!("--mem={m}"));
        }
        if let Some(t) = &x.time {
            args.push(format!("--time={t}"));
        }
        if let Some(p) = &x.partition {
            args.push(format!("--partition={p}"));
        }
        if !after.is_empty() {
            args.push(format!("--dependency=afterok:{}", after.join(":")));
        }
        args.extend(x.sbatch_args.iter().cloned());
        args.push(path.display().to_string());
        let out = slurm("sbatch", &args).with_context(|| format!("submitting {}", t.run))?;
        // --parsable: "id" or "id;cluster"
        let id = out.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
            bail!("sbatch gave no job id for {} (it said {out:?})", t.run);
        }
        Ok(id)
    }

    /// The last line of the job's log that starts with `error`, or its last line.
    fn last_error(dir: &Path, run: &str) -> Option<String> {
        let file = std::fs::File::open(log_file(dir, run)).ok()?;
        let lines: Vec<String> = std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .collect();
        lines
            .iter()
            .rev()
            .find(|l| l.starts_with("error"))
            .or(lines.last())
            .cloned()
    }

    pub fn run(
        x: &ExecutorConfig,
        on_interrupt: Option<OnInterrupt>,
        dir: &Path,
        trainings: &[Training],
        ended: &mut [Option<Ended>],
        label: &str,
        quiet: bool,
    ) -> Result<()> {
        std::fs::create_dir_all(dir.join("slurm"))
            .with_context(|| format!("cannot create {}", dir.join("slurm").display()))?;
        let mut jobs: Jobs = match std::fs::read(jobs_file(dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a job list", jobs_file(dir).display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Jobs::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", jobs_file(dir).display()));
            }
        };
        let mut started = vec![false; trainings.len()];
        // jobs still queued or running from an earlier time: attached to, not submitted again
        for (i, t) in trainings.iter().enumerate() {
            if ended[i].is_some() {
                continue;
            }
            if let Some(id) = jobs.get(&t.run)
                && state(id).is_some_and(|s| active(&s))
            {
                eprintln!("{label}: attaching to job {id} ({})", t.run);
                started[i] = true;
            }
        }
        let mut shown = String::new();
        // each training's state as last shown
        let mut states: Vec<&str> = vec![""; trainings.len()];
        loop {
            if train::interrupted() {
                return interrupt(on_interrupt, trainings, ended, &started, &jobs, label);
            }
            // submit what can start: its needs done, or queued after their jobs
            loop {
                let can_start = ready(trainings, ended, &started, true);
                if can_start.is_empty() {
                    break;
                }
                for i in can_start {
                    let t = &trainings[i];
                    let after: Vec<String> = t
                        .needs
                        .iter()
                        .filter(|&&n| ended[n].is_none())
                        .filter_map(|&n| jobs.get(&trainings[n].run).cloned())
                        .collect();
                    let resumes = dir.join(&t.run).join(run_files::RUN_JSON).is_file();
                    let id = submit(x, t, dir, &after, quiet)?;
                    eprintln!(
                        "{label}: submitted {} as job {id}{} (log {})",
                        t.what,
                        if resumes {
                            ", to resume its interrupted run"
                        } else {
                            ""
                        },
                        log_file(dir, &t.run).display()
                    );
                    jobs.insert(t.run.clone(), id);
                    fsio::write_json(&jobs_file(dir), &jobs)?;
                    started[i] = true;
                }
            }
            // follow the jobs
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for (i, t) in trainings.iter().enumerate() {
                if ended[i].is_some() || !started[i] {
                    continue;
                }
                let id = &jobs[&t.run];
                match state(id) {
                    Some(s) if active(&s) => {
                        let shown_as = if s == "PENDING" { "queued" } else { "running" };
                        *counts.entry(shown_as).or_default() += 1;
                        if states[i] != shown_as {
                            eprintln!("{label}: {}: {shown_as} (job {id})", t.run);
                            states[i] = shown_as;
                        }
                    }
                    s => {
                        let e = outcome(dir, t, last_error(dir, &t.run));
                        let e = match (e, s) {
                            (Ended::Failed(why), Some(s)) => {
                                Ended::Failed(format!("job {id} {}: {why}", s.to_lowercase()))
                            }
                            (e, _) => e,
                        };
                        match &e {
                            Ended::Failed(why) => eprintln!("{label}: {} failed: {why}", t.run),
                            _ => eprintln!("{label}: {}: done (job {id})", t.run),
                        }
                        ended[i] = Some(e);
                    }
                }
            }
            let done = ended
                .iter()
                .filter(|e| matches!(e, Some(Ended::Done(_))))
                .count();
            let failed = ended
                .iter()
                .filter(|e| matches!(e, Some(Ended::Failed(_))))
                .count();
            let now = format!(
                "{label}: slurm: {} queued, {} running, {done} done, {failed} failed of {}",
                counts.get("queued").unwrap_or(&0),
                counts.get("running").unwrap_or(&0),
                trainings.len()
            );
            if now != shown {
                eprintln!("{now}");
                shown = now;
            }
            if ended.iter().all(Option::is_some) {
                return Ok(());
            }
            if counts.is_empty() && !ended.iter().zip(&started).any(|(e, s)| e.is_none() && !s) {
                // nothing queued, nothing running, nothing left to submit
                return Ok(());
            }
            sleep(x.poll_seconds);
        }
    }

    /// Sleeps `seconds`, waking early on an interrupt.
    fn sleep(seconds: f64) {
        let until = std::time::Instant::now() + Duration::from_secs_f64(seconds);
        while std::time::Instant::now() < until && !train::interrupted() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ctrl-C or SIGTERM: the jobs still queued or running are cancelled, or left running.
    fn interrupt(
        on_interrupt: Option<OnInterrupt>,
        trainings: &[Training],
        ended: &mut [Option<Ended>],
        started: &[bool],
        jobs: &Jobs,
        label: &str,
    ) -> Result<()> {
        let live: Vec<(usize, &String)> = trainings
            .iter()
            .enumerate()
            .filter(|(i, _)| ended[*i].is_none() && started[*i])
            .map(|(i, t)| (i, &jobs[&t.run]))
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let choice = on_interrupt.unwrap_or_else(|| ask(live.len()));
        let ids: Vec<String> = live.iter().map(|(_, id)| (*id).clone()).collect();
        match choice {
            OnInterrupt::Cancel => {
                slurm("scancel", &ids)?;
                eprintln!(
                    "{label}: cancelled jobs {} (each checkpointed on SIGTERM; run the same command again to resume them)",
                    ids.join(", ")
                );
            }
            OnInterrupt::Leave => eprintln!(
                "{label}: left jobs {} running; run the same command again to attach to them",
                ids.join(", ")
            ),
        }
        for (i, _) in live {
            ended[i] = Some(Ended::Stopped);
        }
        Ok(())
    }

    /// On a terminal, whether to cancel the jobs; elsewhere they are left running.
    fn ask(jobs: usize) -> OnInterrupt {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return OnInterrupt::Leave;
        }
        eprint!("cancel the {jobs} Slurm job(s) still queued or running? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        match stdin.lock().read_line(&mut answer) {
            Ok(_) if answer.trim().eq_ignore_ascii_case("y") => OnInterrupt::Cancel,
            _ => OnInterrupt::Leave,
        }
    }
}
