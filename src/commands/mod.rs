//! Each command's work, called by `cli`: `session` (train and resume, and the runs they need:
//! a judge, GAN-train), `runs` (opening a trained run), `predict` (eval and predict),
//! `generate` (drawing images from a GAN run, for `generate` and `[data.synthetic]`), `repair`
//! (damage and restore on image files), `bench`, `compare`, `experiment`, and `child` (fovea
//! running itself in a child process).

pub mod bench;
pub mod child;
pub mod compare;
pub mod experiment;
pub mod generate;
pub mod predict;
pub mod repair;
pub mod runs;
pub mod session;
