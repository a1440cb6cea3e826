//! A run folder being written: `artifacts/<name>/` made and locked, its JSON files written.
//! What the folder holds, and its files' schemas, are `run_files`'.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::run_files::{CHECKPOINTS, CONFIG, RUN_JSON, RunInfo, now, read_info};

const LOCK: &str = ".lock";

/// An open run folder. Holding it holds the folder's lock: a second process gets a clear error.
pub struct Run {
    pub dir: PathBuf,
    _lock: File,
}

impl Run {
    /// Makes a new run folder `out/name`; refuses to write into an existing run.
    pub fn create(out: &Path, name: &str) -> Result<Run> {
        let dir = out.join(name);
        if dir.join(CONFIG).exists() {
            bail!(
                "run folder {} already holds a run; continue it with `fovea resume {}` or choose another --name",
                dir.display(),
                dir.display()
            );
        }
        std::fs::create_dir_all(dir.join(CHECKPOINTS))
            .with_context(|| format!("cannot create run folder {}", dir.display()))?;
        Self::open(&dir)
    }

    /// Opens an existing run folder and takes its lock.
    pub fn open(dir: &Path) -> Result<Run> {
        if !dir.is_dir() {
            bail!("run folder {} does not exist", dir.display());
        }
        let path = dir.join(LOCK);
        let lock = File::create(&path)
            .with_context(|| format!("cannot create lock file {}", path.display()))?;
        match lock.try_lock() {
            Ok(()) => Ok(Run {
                dir: dir.to_path_buf(),
                _lock: lock,
            }),
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!(
                    "another fovea process is writing to {} (lock {} is held)",
                    dir.display(),
                    path.display()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join(CHECKPOINTS)
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        crate::fsio::write_json(&self.dir.join(name), value)
    }

    /// Reads `run.json`.
    pub fn info(&self) -> Result<RunInfo> {
        read_info(&self.dir)
    }
}

/// A default run name: `<model>-<dataset>-<UTC date and time>`.
pub fn default_name(model: &str, dataset: &str) -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp: String = now
        .chars()
        .filter(|c| c.is_ascii_digit())
        .take(14)
        .collect();
    format!("{model}-{dataset}-{}-{}", &stamp[..8], &stamp[8..])
}

impl RunInfo {
    /// Sets the status and the end time, and writes `run.json`.
    pub fn finish(&mut self, run: &Run, status: &str) -> Result<()> {
        self.status = status.to_string();
        self.ended = Some(now());
        run.write_json(RUN_JSON, self)
    }
}
