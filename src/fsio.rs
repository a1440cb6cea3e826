//! Writing files so that a crash never leaves a half-written one: a temporary file, fsync, rename,
//! fsync of the folder. Checkpoints, metrics rewrites and run records all go through here.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no folder", path.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    // Make the rename itself durable. Some file systems cannot sync a folder; the rename has
    // happened either way, so that one failure is not an error.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .with_context(|| format!("cannot serialize {}", path.display()))?;
    write_atomic(path, text.as_bytes())
}

/// Appends one line (a newline is added) to `path`, creating it if needed.
pub fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Flushes a file's appended lines to the disk (nothing when it does not exist yet).
pub fn sync_file(path: &Path) -> Result<()> {
    match std::fs::OpenOptions::new().append(true).open(path) {
        Ok(f) => f
            .sync_all()
            .with_context(|| format!("cannot sync {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot open {}", path.display())),
    }
}

/// Refuses a folder for a command's output that already holds anything: nothing there is
/// overwritten.
pub fn check_output_dir(dir: &Path) -> Result<()> {
    let holds_something = dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
    if holds_something {
        anyhow::bail!(
            "{}: the folder exists and is not empty; choose a new one (nothing is overwritten)",
            dir.display()
        );
    }
    Ok(())
}

/// Makes the folder for a command's output (see `check_output_dir`).
pub fn new_output_dir(dir: &Path) -> Result<()> {
    check_output_dir(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}
