//! Records the git commit the binary was built from (for run.json), when git knows it, with
//! `-dirty` when the sources it was built from differ from that commit.
fn main() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    const SOURCES: [&str; 5] = ["src", "kernels", "Cargo.toml", "Cargo.lock", "build.rs"];
    let mut commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_default();
    let mut status = vec!["status", "--porcelain", "--"];
    status.extend(SOURCES);
    if !commit.is_empty() && git(&status).is_some_and(|s| !s.is_empty()) {
        commit.push_str("-dirty");
    }
    println!("cargo:rustc-env=FOVEA_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=.git/index");
    for s in SOURCES {
        println!("cargo:rerun-if-changed={s}");
    }
}
