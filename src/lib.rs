//! fovea: train, compare and use neural-network image recognizers.
//!
//! Data flows one way: each layer imports only from the layers below it (checked by
//! `tests/architecture.rs`, and shown in `docs/architecture.md`):
//!
//! 1. `device`, `fsio`, `progress` — the backend and the machine, atomic writes, progress bars;
//! 2. `data` — formats, datasets, splits, batches, and `[data]`;
//! 3. `run_files` — what a run folder holds: file names and schemas, shared by writers and readers;
//! 4. `report` — pictures drawn from what a run wrote;
//! 5. `restore` — image restoration on the host: damage, classical repairs, PSNR and SSIM;
//! 6. `models` — the networks, and `[model]`;
//! 7. `train` — the loop, checkpoints, metrics, optimizers, the run folder, and `[train]`;
//! 8. `tasks` — what one step of each kind of training does and how it is judged, and `[eval]`;
//! 9. `config` — composes the sections, applies `--set`, resolves each run's settings;
//! 10. `commands` — each command's work: train, resume, eval, predict, generate, repair, bench, compare, experiment;
//! 11. `cli` — arguments in, text out.
//!
//! fovea's kernels for the flex backend are a crate of their own, `fovea_kernels` (`kernels/`).

pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod device;
pub mod fsio;
pub mod models;
pub mod progress;
pub mod report;
pub mod restore;
pub mod run_files;
pub mod tasks;
pub mod train;
