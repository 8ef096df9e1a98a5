//! Middleware options that any connector accepts: `cache`, `cache_size`, `cache_page_size`,
//! `cache_time`, `delay`, `metrics`. The inventory takes them out of the arguments and wraps
//! the connector the plugin made, whatever plugin it is.

use std::time::Duration;

use cglue::prelude::v1::*;

use super::args::{bad_value, parse_flag, Args};
use crate::connector::cpu_state::*;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::*;
use crate::mem::{MemMapping, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata};
use crate::middleware::{check_cache_config, CacheValidity, CachedMemory, DelayedMemory, MetricsMemory, DELAY_MAX};
use crate::types::{size, PhysicalAddress};

/// The middleware requested for one connector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MiddlewareConfig {
    /// Page cache: (size in bytes, page size, validity).
    pub cache: Option<(usize, usize, CacheValidity)>,
    /// Delay per batch call.
    pub delay: Option<Duration>,
    /// Count traffic (logged at `info` level when the connector is dropped).
    pub metrics: bool,
}

fn bytes(key: &str, value: &str) -> Result<usize> {
    size::parse(value)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| bad_value(key, value, "a size like 4096, 64k or 2M"))
}

/// Parses a duration: a number with `ns`, `us`, `ms` or `s` (default `us`).
fn duration(key: &str, value: &str) -> Result<Duration> {
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let n: u64 = value[..split].parse().map_err(|_| bad_value(key, value, "a duration like 50us or 2ms"))?;
    Ok(match &value[split..] {
        "ns" => Duration::from_nanos(n),
        "" | "us" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        _ => return Err(bad_value(key, value, "a duration like 50us or 2ms")),
    })
}

/// Removes the middleware options from `args` and returns the configuration they describe.
/// The cache is on when `cache` is true or any other `cache_*` option is given.
pub fn take_middleware(args: &mut Args) -> Result<MiddlewareConfig> {
    let cache_flag = args.take("cache").map(|v| parse_flag("cache", &v)).transpose()?;
    let cache_size = args.take("cache_size").map(|v| bytes("cache_size", &v)).transpose()?;
    let page_size = args.take("cache_page_size").map(|v| bytes("cache_page_size", &v)).transpose()?;
    let cache_time = args.take("cache_time").map(|v| duration("cache_time", &v)).transpose()?;
    let delay = args.take("delay").map(|v| duration("delay", &v)).transpose()?;
    if let Some(d) = delay.filter(|&d| d > DELAY_MAX) {
        return Err(bad_value("delay", &format!("{d:?}"), "at most 1s (DELAY_MAX)"));
    }
    let metrics = args.take("metrics").map(|v| parse_flag("metrics", &v)).transpose()?.unwrap_or(false);
    let any_cache_option = cache_size.is_some() || page_size.is_some() || cache_time.is_some();
    let cache = cache_flag.unwrap_or(any_cache_option).then(|| {
        (
            cache_size.unwrap_or(2 << 20),
            page_size.unwrap_or(4096),
            CacheValidity::Time(cache_time.unwrap_or(Duration::from_secs(1))),
        )
    });
    if let Some((size, page, _)) = cache {
        check_cache_config(size, page)?;
    }
    Ok(MiddlewareConfig { cache, delay, metrics })
}

impl MiddlewareConfig {
    /// Wraps `conn` as configured; returns it unchanged when nothing is configured. The
    /// result still answers CPU-state queries through the original connector. Fails if the
    /// cache is outside its limits or cannot be allocated.
    pub fn apply(
        &self,
        conn: ConnectorInstanceArcBox<'static>,
        lib: LibArc,
    ) -> Result<ConnectorInstanceArcBox<'static>> {
        if *self == MiddlewareConfig::default() {
            return Ok(conn);
        }
        let original = conn.clone();
        let mut mem = conn;
        if self.metrics {
            mem = group_obj!((MetricsMemory::new(mem).log_on_drop(), lib.clone()) as ConnectorInstance);
        }
        if let Some(delay) = self.delay {
            mem = group_obj!((DelayedMemory::new(mem, delay), lib.clone()) as ConnectorInstance);
        }
        if let Some((size, page, validity)) = self.cache {
            mem = group_obj!((CachedMemory::new(mem, size, page, validity)?, lib.clone()) as ConnectorInstance);
        }
        Ok(group_obj!((Wrapped { mem, original }, lib) as ConnectorInstance))
    }
}

/// A connector wrapped in middleware that still reports the CPU state of the original.
#[derive(Clone)]
struct Wrapped {
    mem: ConnectorInstanceArcBox<'static>,
    original: ConnectorInstanceArcBox<'static>,
}

impl PhysicalMemory for Wrapped {
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        self.mem.phys_read_batch(batch)
    }
    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        self.mem.phys_write_batch(batch)
    }
    fn phys_read_single(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> Result<usize> {
        self.mem.phys_read_single(addr, out)
    }

    fn phys_write_single(&mut self, addr: PhysicalAddress, data: &[u8]) -> Result<usize> {
        self.mem.phys_write_single(addr, data)
    }
    fn metadata(&self) -> PhysicalMemoryMetadata {
        self.mem.metadata()
    }

    fn mem_map_callback(&self, callback: crate::mem::MemMappingCallback) -> Result<()> {
        self.mem.mem_map_callback(callback)
    }
    fn set_mem_map(&mut self, map: &[MemMapping]) {
        self.mem.set_mem_map(map)
    }
}

impl CpuState for Wrapped {
    fn cpu_count(&self) -> usize {
        self.original.as_ref_impl_cpustate().map_or(0, |c| c.cpu_count())
    }
    fn x86_registers(&self, cpu: usize) -> Result<X86Registers> {
        match self.original.as_ref_impl_cpustate() {
            Some(c) => c.x86_registers(cpu),
            None => Err(Error::new(ErrorOrigin::Connector, ErrorKind::Unsupported)),
        }
    }
    fn aarch64_registers(&self, cpu: usize) -> Result<AArch64Registers> {
        match self.original.as_ref_impl_cpustate() {
            Some(c) => c.aarch64_registers(cpu),
            None => Err(Error::new(ErrorOrigin::Connector, ErrorKind::Unsupported)),
        }
    }
    fn riscv_registers(&self, cpu: usize) -> Result<RiscVRegisters> {
        match self.original.as_ref_impl_cpustate() {
            Some(c) => c.riscv_registers(cpu),
            None => Err(Error::new(ErrorOrigin::Connector, ErrorKind::Unsupported)),
        }
    }
    fn vmcoreinfo(&self, buf: &mut [u8]) -> Result<usize> {
        match self.original.as_ref_impl_cpustate() {
            Some(c) => c.vmcoreinfo(buf),
            None => Err(Error::new(ErrorOrigin::Connector, ErrorKind::Unsupported)),
        }
    }
}

cglue_impl_group!(Wrapped, ConnectorInstance, { CpuState });
cglue_impl_group!(MetricsMemory<P: PhysicalMemory + Clone>, ConnectorInstance, {});
cglue_impl_group!(DelayedMemory<P: PhysicalMemory + Clone>, ConnectorInstance, {});
cglue_impl_group!(CachedMemory<P: PhysicalMemory + Clone>, ConnectorInstance, {});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        let mut a = Args::parse("target,cache_size=4M,delay=2ms,metrics=1,other=x").unwrap();
        let m = take_middleware(&mut a).unwrap();
        assert_eq!(m.cache, Some((4 << 20, 4096, CacheValidity::Time(Duration::from_secs(1)))));
        assert_eq!(m.delay, Some(Duration::from_millis(2)));
        assert!(m.metrics);
        assert_eq!(a, Args::parse("target,other=x").unwrap());
        let mut off = Args::parse("cache=0,cache_size=1M").unwrap();
        assert_eq!(take_middleware(&mut off).unwrap().cache, None);
        assert!(take_middleware(&mut Args::parse("delay=fast").unwrap()).is_err());
        assert!(take_middleware(&mut Args::parse("cache_size=lots").unwrap()).is_err());
        assert_eq!(take_middleware(&mut Args::default()).unwrap(), MiddlewareConfig::default());
    }

    /// Sizes and times from users are checked before anything is allocated or waited for;
    /// the error names the option.
    #[test]
    fn options_outside_their_limits_are_errors() {
        for text in [
            "cache_size=1T",
            "cache_size=64G",
            "cache_size=1G,cache_page_size=64G",
            "cache_page_size=64G",
            "cache_page_size=1G",
            "cache_page_size=3000",
            "cache_page_size=1k",
            "cache_size=0xffffffffffffffffffff",
            "delay=2s",
            "delay=18446744073709551615s",
        ] {
            let err = take_middleware(&mut Args::parse(text).unwrap()).unwrap_err();
            assert_eq!(err, Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument), "{text}");
        }
        let mut ok = Args::parse("cache_size=64M,cache_page_size=2M,delay=1s").unwrap();
        let config = take_middleware(&mut ok).unwrap();
        assert_eq!(config.cache, Some((64 << 20, 2 << 20, CacheValidity::Time(Duration::from_secs(1)))));
        let conn = crate::plugins::connector_instance(crate::connector::dummy_memory(0x1000), LibArc::default());
        assert!(config.apply(conn, LibArc::default()).is_ok());
    }

    /// Single reads and writes through every middleware give what the connector below gives.
    #[test]
    fn single_reads_and_writes_pass_through_middleware() {
        let mut map = crate::mem::MemoryMap::new();
        map.push(crate::types::Address::new(0x1000), 0x2000, 0).unwrap();
        let mut mem = crate::connector::dummy_memory_with_map(map).unwrap();
        let pattern: Vec<u8> = (0..0x2000u32).map(|i| (i * 3) as u8).collect();
        let at = |a: u64| PhysicalAddress::plain(crate::types::Address::from(a));
        mem.phys_write_raw(at(0x1000), &pattern).unwrap();
        let config = take_middleware(&mut Args::parse("cache=1,delay=1ns,metrics=1").unwrap()).unwrap();
        let mut conn =
            config.apply(crate::plugins::connector_instance(mem, LibArc::default()), LibArc::default()).unwrap();
        for (addr, len) in [(0x1000, 8), (0x2ffc, 8), (0xff0, 0x20), (0x1800, 0x1000), (0x3000, 4)] {
            let done = crate::mem::partial::check::phys_read_agrees(&mut conn, addr, len);
            assert_eq!(done, (0x3000u64.saturating_sub(addr) as usize).min(len) * usize::from(addr >= 0x1000));
        }
        assert_eq!(conn.phys_write_single(at(0x2ffe), &[9; 4]), Ok(2));
        assert_eq!(conn.phys_read::<u16>(at(0x2ffe)).unwrap(), 0x0909);
    }
}
