//! The `fovea` binary: parse arguments, run, print the whole error chain and exit 2 on error.

use clap::Parser;

fn main() {
    // Burn materializes a loaded optimizer state on `Device::default()` before moving it to the
    // parameters' device at the next step; unset, that default is the GPU. Point it at the CPU.
    // SAFETY: the first statement of `main`, before this process has any other thread.
    unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    fovea::device::keep_freed_memory();
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
