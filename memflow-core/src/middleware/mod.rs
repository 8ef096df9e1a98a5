//! Optional wrappers around any [`crate::mem::PhysicalMemory`]: a page cache, a delay that
//! simulates a slow link, and metrics. Each is itself a `PhysicalMemory`, so they stack.

mod cache;
mod delay;
mod metrics;

pub use cache::{CacheValidity, CachedMemory};
pub use delay::DelayedMemory;
pub use metrics::{Metrics, MetricsMemory};
