//! Reports: pictures drawn from what a run wrote (its metric records, a test report).

pub mod plots;
