//! The `fovea` binary: parse arguments, run, print the whole error chain and exit 2 on error.

use clap::Parser;

/// glibc hands every freed block above its mmap threshold back to the kernel and trims the heap
/// top above 128 KiB: a training step allocates and frees tensors of several MiB hundreds of
/// times, and each of them then costs fresh page faults and, on free, a TLB shoot-down across
/// the threads. Keeping freed memory for reuse makes a flex training step of the reference CNN
/// 5–8 % faster (README, "Performance"), peak memory unchanged.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("FOVEA_GLIBC_MALLOC").is_none() {
        // SAFETY: mallopt only changes allocator settings; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        }
    }
}

fn main() {
    // Burn materializes a loaded optimizer state on `Device::default()` before moving it to the
    // parameters' device at the next step; unset, that default is the GPU. Point it at the CPU.
    // SAFETY: the first statement of `main`, before this process has any other thread.
    unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    keep_freed_memory();
    let cli = fovea::cli::Cli::parse();
    match fovea::cli::run(cli) {
        Ok(fovea::cli::Exit::Ok) => {}
        Ok(fovea::cli::Exit::Interrupted) => std::process::exit(130),
        Ok(fovea::cli::Exit::Crashed) => std::process::exit(137),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
