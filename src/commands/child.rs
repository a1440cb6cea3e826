//! `fovea` running itself as a child process (`compare` and `experiment` train each run in one,
//! `bench --kinds` benches each kind in one), so each child has its own peak memory and a crash
//! is one failed entry, not the end of the whole command.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::train;

/// A command that runs this `fovea` executable.
pub fn fovea() -> Result<Command> {
    let exe = std::env::current_exe().context("cannot find the fovea executable")?;
    Ok(Command::new(exe))
}

/// Runs a child, its error output shown as it comes; returns its last error line (or its exit
/// status) when it failed. Where this process catches interrupts, the child runs in a process
/// group of its own and each interrupt is passed on to it once (a terminal's Ctrl-C would
/// otherwise reach it twice).
pub fn run(mut cmd: Command) -> Result<Option<String>> {
    let forward = train::interrupts_handled();
    if forward {
        cmd.process_group(0);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start a fovea child process")?;
    if forward {
        train::forward_interrupts_to(child.id(), true);
    }
    let ended = run_to_end(&mut child);
    train::forward_interrupts_to(child.id(), false);
    ended
}

fn run_to_end(child: &mut std::process::Child) -> Result<Option<String>> {
    let mut last = None;
    if let Some(err) = child.stderr.take() {
        let mut out = std::io::stderr();
        for line in BufReader::new(err).lines() {
            let line = line.context("cannot read the child's error output")?;
            let _ = writeln!(out, "{line}");
            if line.starts_with("error") {
                last = Some(line);
            }
        }
    }
    let status = child
        .wait()
        .context("cannot wait for the fovea child process")?;
    Ok(if status.success() {
        None
    } else {
        Some(last.unwrap_or_else(|| status.to_string()))
    })
}
