//! The recording side of the metrics, below the engine: the runtime's clock, the counters and
//! histograms the workers write in their own cache lines, and each worker's execution
//! history. Snapshots of them (`Stats`, `ExecutionRecord`) are taken in `runtime/stats.rs`.

pub(crate) mod clock;
pub(crate) mod counters;
pub(crate) mod history;
