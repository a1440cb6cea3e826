//! The only place that names a Burn backend: turns `--backend` / `backend = ...` into a `Device`.
//! Also what fovea asks of the machine: its thread count, the process's peak memory, and the
//! allocator settings the CPU backends run fastest with (`keep_freed_memory`).

use anyhow::{Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// A compute backend fovea can run on, chosen at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend (SIMD + threads). The default: the fastest of the CPU backends.
    Flex,
    /// Burn's ndarray CPU backend (deprecated by Burn 0.22, kept because the brief names it).
    Ndarray,
    /// GPU through WebGPU (Vulkan, Metal, DX12); also Mesa's software Vulkan driver on CPU-only machines.
    Wgpu,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [BackendKind::Flex, BackendKind::Ndarray, BackendKind::Wgpu];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
        }
    }

    pub fn is_cpu(self) -> bool {
        self != BackendKind::Wgpu
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Opens the device for `kind` (without autodiff; training calls `.autodiff()` on it).
///
/// Burn materializes a loaded optimizer state on `Device::default()`, which is the GPU unless
/// `BURN_DEVICE` says otherwise; the `fovea` binary sets it to `flex` as it starts, and
/// `.cargo/config.toml` does the same for `cargo test`. This function never touches the
/// environment: changing it while other threads run is unsound.
pub fn open(kind: BackendKind) -> Result<Device> {
    match kind {
        BackendKind::Flex => Ok(Device::flex()),
        #[allow(deprecated)]
        BackendKind::Ndarray => Ok(Device::ndarray()),
        BackendKind::Wgpu => match wgpu_device() {
            Ok(device) => Ok(device.clone()),
            Err(e) => bail!(
                "backend wgpu: no usable GPU adapter ({e}). Install a GPU driver with Vulkan support \
                 (on a CPU-only Debian/Ubuntu machine: `apt-get install mesa-vulkan-drivers` for the \
                 software driver), or use --backend flex"
            ),
        },
    }
}

/// Burn's wgpu runtime can be initialized once per process: the outcome is kept.
fn wgpu_device() -> &'static std::result::Result<Device, String> {
    static DEVICE: std::sync::OnceLock<std::result::Result<Device, String>> =
        std::sync::OnceLock::new();
    DEVICE.get_or_init(|| Device::wgpu_options().init().map_err(|e| e.to_string()))
}

/// What each backend offers on this machine, for `fovea devices`.
pub fn describe_all() -> Vec<(BackendKind, std::result::Result<String, String>)> {
    BackendKind::ALL
        .iter()
        .map(|&kind| {
            let status = match kind {
                BackendKind::Flex | BackendKind::Ndarray => {
                    Ok(format!("CPU, {} threads", threads()))
                }
                BackendKind::Wgpu => wgpu_adapters(),
            };
            (kind, status)
        })
        .collect()
}

fn wgpu_adapters() -> std::result::Result<String, String> {
    use burn::tensor::wgpu::wgpu;
    let instance = wgpu::Instance::default();
    let adapters = pollster_block(instance.enumerate_adapters(wgpu::Backends::all()));
    if adapters.is_empty() {
        return Err(
            "no adapter found (install a Vulkan driver; CPU-only: mesa-vulkan-drivers)".into(),
        );
    }
    Ok(adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
        })
        .collect::<Vec<_>>()
        .join("; "))
}

/// `enumerate_adapters` is a future in recent wgpu versions; on native it is ready at once.
fn pollster_block<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// The threads the CPU backends and fovea's own parallel work run on: `RAYON_NUM_THREADS` where
/// set (the thread pool they share reads it; `compare` and `experiment` set it to give each of
/// several trainings its share), the machine's otherwise.
pub fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Peak resident memory of this process (Linux), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The machine's memory (Linux: `MemTotal`), in bytes; `None` where it cannot be read.
pub fn memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Refuses an allocation of `bytes` that cannot fit in this machine's memory (or, where the
/// memory cannot be read, 64 GiB), before it is attempted: `what` names the thing and the key
/// that sizes it.
pub fn check_fits(what: &str, bytes: u128) -> Result<()> {
    let memory = memory_bytes().unwrap_or(64 << 30);
    if bytes > memory as u128 {
        bail!(
            "{what} would need {} but this machine has {} of memory",
            human_bytes(bytes),
            human_bytes(memory as u128)
        );
    }
    Ok(())
}

/// `bytes` in B, KiB, MiB, GiB, TiB or PiB, to one decimal.
pub fn human_bytes(bytes: u128) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// A short description of the device for run.json.
pub fn describe(kind: BackendKind, device: &Device) -> String {
    format!("{kind}: {device:?}")
}

/// glibc hands every freed block above its mmap threshold back to the kernel and trims the heap
/// top above 128 KiB: a training step allocates and frees tensors of several MiB hundreds of
/// times, and each of them then costs fresh page faults and, on free, a TLB shoot-down across
/// the threads. Keeping freed memory for reuse makes a flex training step faster, peak memory
/// unchanged (docs/performance.md).
///
/// Call it first in `main`, before any other thread exists (the `fovea` binary and
/// `examples/step_profile.rs` do); `FOVEA_GLIBC_MALLOC=1` keeps glibc's defaults.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("FOVEA_GLIBC_MALLOC").is_none() {
        // SAFETY: mallopt only changes allocator settings; called first in `main`, before any
        // other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        }
    }
}
