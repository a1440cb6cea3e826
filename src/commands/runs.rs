//! Opening a trained run for use: its config as the run saved it, one of its checkpoints, and
//! the device it is used on; and a classifier's model loaded from it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use burn::tensor::Device;

use crate::config::{Config, run_config};
use crate::device::{self, BackendKind};
use crate::models::{Model, ModelConfig};
use crate::run_files;
use crate::tasks::classify;
use crate::train::Part;
use crate::train::checkpoint::{self, CheckpointMeta};

/// A checkpoint found in a run folder: its path, its meta and its parts.
type Found = (PathBuf, CheckpointMeta, Vec<Part>);

/// A trained run opened at one of its checkpoints, on the device it is used on.
pub struct Opened {
    /// The run's config, its backend the one it is used on.
    pub config: Config,
    pub checkpoint: PathBuf,
    pub meta: CheckpointMeta,
    pub parts: Vec<Part>,
    pub device: Device,
}

impl Opened {
    /// `which` checkpoint (`best`, `last` or a step number) of the run in `dir`, on `backend`
    /// (the run's own when none is given).
    pub fn open(dir: &Path, which: &str, backend: Option<BackendKind>) -> Result<Self> {
        Ok(Self::open_as(dir, which, backend, |_| Some(()), "")?.0)
    }

    /// As `open`, for a command that reads one kind of run: `pick` takes what it needs from the
    /// run's model config, checked before any checkpoint is read; `None` is an error that says
    /// what the run is, then `needs`.
    pub fn open_as<T>(
        dir: &Path,
        which: &str,
        backend: Option<BackendKind>,
        pick: impl FnOnce(&ModelConfig) -> Option<T>,
        needs: &str,
    ) -> Result<(Self, T)> {
        let mut config = run_config(dir)?;
        let picked = pick(&config.model).ok_or_else(|| {
            anyhow!(
                "{} is a {} run; {needs}",
                dir.display(),
                config.model.kind()
            )
        })?;
        if let Some(b) = backend {
            config.backend = b;
        }
        let (checkpoint, meta, parts) = find_checkpoint(dir, which)?;
        if meta.model_kind != config.model.kind() {
            bail!(
                "{} holds a {} checkpoint but its config.toml is of a {} run",
                checkpoint.display(),
                meta.model_kind,
                config.model.kind()
            );
        }
        config
            .model
            .check_fits(
                meta.shape,
                meta.classes.len(),
                config.train.batch_size,
                config.train.eval_batch_size,
            )
            .with_context(|| format!("{}", dir.join(run_files::CONFIG).display()))?;
        let device = device::open(config.backend)?;
        let opened = Opened {
            config,
            checkpoint,
            meta,
            parts,
            device,
        };
        Ok((opened, picked))
    }
}

/// A trained classifier read back from a run folder, for eval and predict.
pub struct Loaded {
    /// In evaluation mode, on `device`.
    pub model: Model,
    pub meta: CheckpointMeta,
    pub config: Config,
    pub device: Device,
    pub checkpoint: PathBuf,
}

/// Loads a run's classifier from `which` checkpoint, on `backend` if one is given.
pub fn load_run(dir: &Path, which: &str, backend: Option<BackendKind>) -> Result<Loaded> {
    let run = Opened::open(dir, which, backend)?;
    let model = run
        .config
        .model
        .init(run.meta.shape, run.meta.classes.len(), &run.device)?;
    let model = classify::load_model(model, &run.parts)?.valid();
    Ok(Loaded {
        model,
        meta: run.meta,
        config: run.config,
        device: run.device,
        checkpoint: run.checkpoint,
    })
}

/// Finds `which` checkpoint of a run (`best`, `last` or a step number), its metadata checked.
fn find_checkpoint(dir: &Path, which: &str) -> Result<Found> {
    let (path, meta, parts) = pick_checkpoint(dir, which)?;
    meta.check()
        .with_context(|| format!("checkpoint {}", path.display()))?;
    Ok((path, meta, parts))
}

fn pick_checkpoint(dir: &Path, which: &str) -> Result<Found> {
    let ckpts = dir.join(run_files::CHECKPOINTS);
    let newest = || -> Result<Found> {
        checkpoint::newest_intact::<CheckpointMeta>(&ckpts)?
            .with_context(|| format!("{} has no checkpoint", ckpts.display()))
    };
    let read = |p: PathBuf| -> Result<Found> {
        let (m, parts) = checkpoint::read(&p)?;
        Ok((p, m, parts))
    };
    match which {
        "last" => newest(),
        "best" => {
            let best = ckpts.join(checkpoint::BEST);
            if best.exists() {
                read(best)
            } else {
                eprintln!(
                    "note: {} has no best checkpoint (no validation set?); using the last one",
                    ckpts.display()
                );
                newest()
            }
        }
        n => {
            let step: u64 = n.parse().map_err(|_| {
                anyhow::anyhow!("--checkpoint {n}: expected best, last or a step number")
            })?;
            let p = ckpts.join(checkpoint::step_name(step));
            if !p.exists() {
                let have: Vec<String> = checkpoint::list(&ckpts)?
                    .iter()
                    .map(|(s, _)| s.to_string())
                    .collect();
                bail!(
                    "no checkpoint at step {step} in {} (available: {})",
                    ckpts.display(),
                    have.join(", ")
                );
            }
            read(p)
        }
    }
}
