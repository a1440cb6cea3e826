//! Checkpoints: one file each, written atomically, sealed with a SHA-256 of its contents.
//!
//! Layout: `FOVEACKP` | format version (u32) | meta length (u64) | meta JSON | part count (u32) |
//! for each part: name length (u32), name, data length (u64), data | SHA-256 of everything before.
//! Parts are opaque named blobs (each model's and optimizer's record in burnpack form); the meta is
//! the loop state. A file is written to a temporary name, synced and renamed (`fsio`), so a crash
//! mid-write leaves the previous checkpoints untouched.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use super::state::LoopState;
use super::task::Part;
use crate::data::InputShape;
use crate::data::batch::Normalizer;
use crate::fsio::write_atomic;

const MAGIC: &[u8; 8] = b"FOVEACKP";
const VERSION: u32 = 2;
/// The bytes of a part's name length and data length.
const PART_HEADER: usize = 12;

/// What a checkpoint records besides the task's parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub fovea_version: String,
    pub model_kind: String,
    pub classes: Vec<String>,
    pub shape: InputShape,
    pub normalizer: Normalizer,
    pub state: LoopState,
}

impl CheckpointMeta {
    /// Refuses metadata that cannot describe a model: an empty or oversized image shape, no
    /// classes, a normalizer for another number of channels.
    pub fn check(&self) -> Result<()> {
        self.shape.check()?;
        if self.classes.is_empty() {
            bail!("it lists no classes");
        }
        self.normalizer.check(self.shape.channels)
    }

    /// The data a run's model is used with must have its image shape and number of classes.
    pub fn check_data(&self, data: &str, shape: InputShape, classes: usize) -> Result<()> {
        if shape != self.shape || classes != self.classes.len() {
            bail!(
                "{data} has images of {shape} in {classes} classes; the model takes images of {} in {} classes",
                self.shape,
                self.classes.len()
            );
        }
        Ok(())
    }
}

/// Serializes a checkpoint into bytes.
pub fn encode<M: Serialize>(meta: &M, parts: &[Part]) -> Result<Vec<u8>> {
    let meta = serde_json::to_vec(meta)?;
    let mut out = Vec::with_capacity(
        64 + meta.len()
            + parts
                .iter()
                .map(|p| p.1.len() + p.0.len() + 12)
                .sum::<usize>(),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for (name, data) in parts {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(data);
    }
    Ok(seal(out))
}

/// A checkpoint's body with its SHA-256 appended: the file as written.
pub fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let digest = Sha256::digest(&body);
    body.extend_from_slice(&digest);
    body
}

/// Parses and verifies checkpoint bytes.
pub fn decode<M: DeserializeOwned>(bytes: &[u8]) -> Result<(M, Vec<Part>)> {
    if bytes.len() < MAGIC.len() + 4 + 32 || &bytes[..8] != MAGIC {
        bail!(
            "not a fovea checkpoint (bad header or truncated to {} bytes)",
            bytes.len()
        );
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        bail!("checksum mismatch: the file is corrupt or truncated");
    }
    let mut r = Reader {
        bytes: body,
        pos: 8,
    };
    let version = u32::from_le_bytes(r.take(4)?.try_into().unwrap());
    if version != VERSION {
        bail!(
            "checkpoint format version {version} is not supported (this fovea reads version {VERSION})"
        );
    }
    let meta_len = r.len64()?;
    let meta = serde_json::from_slice(r.take(meta_len)?).context("checkpoint metadata")?;
    let count = u32::from_le_bytes(r.take(4)?.try_into().unwrap()) as usize;
    // Each part takes at least its two lengths: a count the rest cannot hold is refused before
    // anything is allocated for it.
    if count > r.left() / PART_HEADER {
        bail!(
            "the header declares {count} parts but only {} bytes follow",
            r.left()
        );
    }
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = u32::from_le_bytes(r.take(4)?.try_into().unwrap()) as usize;
        let name = String::from_utf8(r.take(name_len)?.to_vec()).context("part name")?;
        let len = r.len64()?;
        parts.push((name, r.take(len)?.to_vec()));
    }
    Ok((meta, parts))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.left() < n {
            bail!("checkpoint ends early");
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn len64(&mut self) -> Result<usize> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()) as usize)
    }
}

/// Reads and verifies one checkpoint file.
pub fn read<M: DeserializeOwned>(path: &Path) -> Result<(M, Vec<Part>)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    decode(&bytes).with_context(|| format!("checkpoint {}", path.display()))
}

/// The file name of the checkpoint taken after `step` optimizer steps.
pub fn step_name(step: u64) -> String {
    format!("step-{step:09}.ckpt")
}

pub const BEST: &str = "best.ckpt";

/// Step checkpoints in `dir`, newest first.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.strip_suffix(".ckpt"))
            .and_then(|s| s.parse().ok())
        {
            out.push((step, path));
        }
    }
    out.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(out)
}

/// Deletes all but the newest `keep` step checkpoints.
pub fn prune(dir: &Path, keep: usize) -> Result<()> {
    for (_, path) in list(dir)?.into_iter().skip(keep) {
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot remove old checkpoint {}", path.display()))?;
    }
    Ok(())
}

/// Makes `best.ckpt` hold the weights of `best_step`, which a crash between writing a step
/// checkpoint and `best.ckpt`, or a fall-back past a corrupt checkpoint, can leave it without.
/// Copies the step checkpoint of `best_step` when it is kept; otherwise removes a `best.ckpt`
/// that holds other weights (it is written again when validation next improves). Returns what
/// it did, for the user.
pub fn reconcile_best(dir: &Path, best_step: Option<u64>) -> Result<Option<String>> {
    let best = dir.join(BEST);
    let held = if best.exists() {
        read::<CheckpointMeta>(&best)
            .ok()
            .map(|(m, _)| m.state.step)
    } else {
        None
    };
    if held == best_step {
        return Ok(None);
    }
    if let Some(step) = best_step {
        let source = dir.join(step_name(step));
        let intact = std::fs::read(&source)
            .ok()
            .filter(|bytes| decode::<CheckpointMeta>(bytes).is_ok());
        if let Some(bytes) = intact {
            write_atomic(&best, &bytes)?;
            return Ok(Some(format!(
                "{} did not hold the best weights (step {step}); restored it from {}",
                best.display(),
                source.display()
            )));
        }
    }
    if best.exists() {
        std::fs::remove_file(&best).with_context(|| format!("cannot remove {}", best.display()))?;
        return Ok(Some(format!(
            "{} did not hold the weights of the best step; removed it (it is written again when validation improves)",
            best.display()
        )));
    }
    Ok(None)
}

/// The newest intact step checkpoint. Corrupt ones are reported on stderr and skipped.
pub fn newest_intact<M: DeserializeOwned>(dir: &Path) -> Result<Option<(PathBuf, M, Vec<Part>)>> {
    let mut skipped = Vec::new();
    for (_, path) in list(dir)? {
        match read::<M>(&path) {
            Ok((meta, parts)) => {
                if !skipped.is_empty() {
                    eprintln!(
                        "warning: falling back to {} (the newest intact checkpoint)",
                        path.display()
                    );
                }
                return Ok(Some((path, meta, parts)));
            }
            Err(e) => {
                eprintln!("warning: {e:#}; skipping it");
                skipped.push(path);
            }
        }
    }
    if !skipped.is_empty() {
        bail!("every checkpoint in {} is corrupt", dir.display());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let parts = vec![
            ("model".to_string(), vec![1, 2, 3]),
            ("optim".to_string(), vec![]),
        ];
        let bytes = encode(&serde_json::json!({"step": 7}), &parts).unwrap();
        let (meta, back): (serde_json::Value, _) = decode(&bytes).unwrap();
        assert_eq!(meta["step"], 7);
        assert_eq!(back, parts);
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(
            format!("{:#}", decode::<serde_json::Value>(&flipped).unwrap_err())
                .contains("checksum")
        );
        assert!(decode::<serde_json::Value>(&bytes[..bytes.len() - 5]).is_err());
    }

    /// A body with a valid checksum whose part count is far beyond what follows.
    fn sealed(count: u32) -> Vec<u8> {
        let mut out = encode(&serde_json::json!({"step": 1}), &[]).unwrap();
        out.truncate(out.len() - 32);
        let at = out.len() - 4;
        out[at..].copy_from_slice(&count.to_le_bytes());
        seal(out)
    }

    #[test]
    fn a_sealed_file_with_a_huge_part_count_is_refused_before_allocating() {
        let err = format!(
            "{:#}",
            decode::<serde_json::Value>(&sealed(u32::MAX)).unwrap_err()
        );
        assert!(err.contains("declares 4294967295 parts"), "{err}");
        let err = format!("{:#}", decode::<serde_json::Value>(&sealed(1)).unwrap_err());
        assert!(err.contains("parts but only 0 bytes"), "{err}");
    }

    #[test]
    fn newest_intact_skips_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        for step in [1u64, 2, 3] {
            let bytes = encode(&step, &[]).unwrap();
            write_atomic(&dir.path().join(step_name(step)), &bytes).unwrap();
        }
        std::fs::write(
            dir.path().join(step_name(3)),
            b"FOVEACKP garbage that is long enough to parse",
        )
        .unwrap();
        let (path, meta, _) = newest_intact::<u64>(dir.path()).unwrap().unwrap();
        assert_eq!(meta, 2);
        assert!(path.ends_with(step_name(2)));
        prune(dir.path(), 1).unwrap();
        assert_eq!(list(dir.path()).unwrap().len(), 1);
    }
}
