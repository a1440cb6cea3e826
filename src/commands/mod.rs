//! Each command's work, called by `cli`: `session` (train and resume, and the runs they need:
//! a judge, GAN-train), `runs` (opening a trained run), `predict` (eval and predict), `export`
//! (a run's weights as a file for other tools), `generate` (drawing images from a GAN run,
//! for `generate` and `[data.synthetic]`), `repair` (damage and restore on image files),
//! `serve` (a classifier behind HTTP), `bench`, `compare`, `experiment`, and `child` (fovea
//! running itself in a child process).

pub mod bench;
pub mod child;
pub mod compare;
pub mod executor;
pub mod experiment;
pub mod export;
pub mod generate;
pub mod predict;
pub mod repair;
pub mod runs;
pub mod serve;
pub mod session;
