//! Training: one loop for every kind of task. The loop (`fit`) owns epochs, data order, the LR
//! schedule, checkpoints, metrics, progress and interruption; a `Task` owns what one step does,
//! what it reports and how its best checkpoint is chosen.

pub mod checkpoint;
pub mod config;
pub mod fit;
pub mod metrics;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod state;
pub mod task;

pub use checkpoint::CheckpointMeta;
pub use config::{OptimizerKind, ScheduleKind, TrainConfig};
pub use fit::{
    FitContext, FitOptions, Outcome, fit, forward_interrupts_to, install_interrupt_handler,
    interrupted, interrupts_handled, rewind,
};
pub use run::Run;
pub use state::LoopState;
pub use task::{Goal, Part, Report, StepStats, Task, TaskSpec};
