//! Progress a person can watch: a bar with the running metrics, images/s and ETA on a terminal,
//! plain periodic lines otherwise (logs, CI); and a byte-count bar for downloads.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    last_line: Instant,
    prefix: String,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Self {
            bar: None,
            quiet,
            last_line: Instant::now(),
            prefix: String::new(),
        }
    }

    pub fn start_epoch(&mut self, epoch: usize, epochs: usize, batches: usize, done: usize) {
        self.prefix = format!("epoch {epoch}/{epochs}");
        if self.quiet || !std::io::stdout().is_terminal() {
            self.last_line = Instant::now();
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30.cyan/blue}] {pos}/{len} {msg} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(self.prefix.clone());
        bar.set_position(done as u64);
        bar.reset_eta();
        self.bar = Some(bar);
    }

    /// After each step: the running epoch metrics (already formatted) and the current throughput.
    pub fn update(&mut self, done: usize, batches: usize, metrics: &str, images_per_sec: f64) {
        let msg = format!("{metrics} {images_per_sec:.0} img/s");
        match &self.bar {
            Some(bar) => {
                bar.set_position(done as u64);
                bar.set_message(msg);
            }
            None if !self.quiet && self.last_line.elapsed() >= Duration::from_secs(10) => {
                println!("{} batch {done}/{batches} {msg}", self.prefix);
                self.last_line = Instant::now();
            }
            None => {}
        }
    }

    /// A line that stays (epoch summaries, notices), printed above the bar.
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    pub fn finish_epoch(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A byte-count bar for downloads (hidden when quiet or not on a terminal).
pub fn download_bar(name: &str, total: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("valid template"),
    );
    bar.set_prefix(name.to_string());
    bar
}
