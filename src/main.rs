//! The `fovea` binary: parse arguments, run, print the whole error chain and exit 2 on error.

use clap::Parser;

fn main() {
    let cli = fovea::cli::Cli::parse();
    match fovea::cli::run(cli) {
        Ok(fovea::cli::Exit::Ok) => {}
        Ok(fovea::cli::Exit::Interrupted) => std::process::exit(130),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
