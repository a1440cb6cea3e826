//! fovea: train, compare and use neural-network image recognizers.
//!
//! Data flows one way. Each layer imports only from layers above it:
//!
//! 1. `device`, `fsio`, `progress` — leaves: the backend, atomic writes, progress bars;
//! 2. `data` — formats, datasets, splits, batches, and `[data]`;
//! 3. `models` — the networks, and `[model]`;
//! 4. `train` — the loop, checkpoints, metrics, run folders, and `[train]`;
//! 5. `report` — pictures drawn from what a run wrote;
//! 6. `tasks` — what one step of each kind of training does;
//! 7. `config` — composes the sections and applies `--set`;
//! 8. `trained`, `session`, `bench`, `experiment` — the commands' work (each may use those before it);
//! 9. `cli` — arguments in, text out.

pub mod bench;
pub mod child;
pub mod cli;
pub mod compare;
pub mod config;
pub mod data;
pub mod device;
pub mod experiment;
pub mod fsio;
pub mod models;
pub mod progress;
pub mod repair;
pub mod report;
pub mod restore;
pub mod session;
pub mod tasks;
pub mod train;
pub mod trained;
