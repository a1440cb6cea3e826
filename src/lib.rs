//! fovea: train, compare and use neural-network image recognizers.
//!
//! Data flows one way: config → device → data → model → training loop → checkpoints/metrics →
//! report.

pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod models;
pub mod report;
pub mod session;
pub mod train;
