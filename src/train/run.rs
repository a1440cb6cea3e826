//! A run folder: `artifacts/<name>/` with its lock, resolved config and `run.json`.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::data::DataSource;
use crate::data::batch::Normalizer;

pub const CONFIG: &str = "config.toml";
pub const RUN_JSON: &str = "run.json";
pub const CHECKPOINTS: &str = "checkpoints";
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

/// Reads `run.json` of a run folder.
pub fn read_info(dir: &Path) -> Result<RunInfo> {
    let path = dir.join(RUN_JSON);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid run record", path.display()))
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

/// One `fovea resume` of a run, as `run.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Resume {
    pub time: String,
    pub backend: String,
    pub device: String,
    pub threads: usize,
    /// The checkpoint it continued from (none: the run had none and started over).
    pub checkpoint: Option<String>,
    /// The optimizer step it continued from.
    pub step: u64,
}

/// `run.json`: what produced the run, on what, from which data. `backend`, `device` and
/// `threads` are those the run started on; each resume records its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub fovea_version: String,
    pub git_commit: Option<String>,
    pub burn_version: String,
    pub backend: String,
    pub device: String,
    pub threads: usize,
    pub command: Vec<String>,
    pub data: DataSource,
    pub normalizer: Normalizer,
    pub started: String,
    pub ended: Option<String>,
    /// `running`, `completed`, `interrupted` or `failed: …`.
    pub status: String,
    /// Every resume, in order.
    pub resumes: Vec<Resume>,
}

impl RunInfo {
    /// Sets the status and the end time, and writes `run.json`.
    pub fn finish(&mut self, run: &Run, status: &str) -> Result<()> {
        self.status = status.to_string();
        self.ended = Some(now());
        run.write_json(RUN_JSON, self)
    }
}

pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

pub fn git_commit() -> Option<String> {
    option_env!("FOVEA_GIT_COMMIT")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
