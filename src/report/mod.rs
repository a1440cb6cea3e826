//! Reports read only what a run wrote: plots of its metrics and its confusion matrix.

pub mod plots;
