//! Optional wrappers around any [`crate::mem::PhysicalMemory`]: a page cache, a delay that
//! simulates a slow link, and metrics. Each is itself a `PhysicalMemory`, so they stack.

mod cache;
mod delay;
mod metrics;

pub use cache::{
    check_cache_config, CacheValidity, CachedMemory, CACHE_PAGE_SIZE_MAX, CACHE_PAGE_SIZE_MIN, CACHE_SIZE_MAX,
};
pub use delay::{DelayedMemory, DELAY_MAX};
pub use metrics::{Metrics, MetricsMemory};
