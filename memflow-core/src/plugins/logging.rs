//! Logging across the plugin boundary.
//!
//! A dynamically loaded plugin has its own copy of the `log` crate, with no logger. The host
//! hands every create function a [`PluginLogger`]: two plain function pointers back into the
//! host's `log`. The plugin installs a forwarder once; it asks the host for the current level
//! on every record, so level changes on the host reach plugins that are already loaded. The
//! reasons a plugin gives its errors go to the host the same way, so they reach the host's
//! `Display` of the error and the C API's `mf_last_error_message`.

use std::sync::OnceLock;

use cglue::slice::CSliceRef;

/// The host's logging entry points, as passed to plugins.
#[repr(C)]
#[derive(Copy, Clone)]
pub struct PluginLogger {
    /// Emits a record: `level` 1 (error) to 5 (trace); `target` and `message` are UTF-8 and
    /// valid for the call only.
    pub log: extern "C" fn(level: u32, target: CSliceRef<u8>, message: CSliceRef<u8>),
    /// The host's current maximum level: 0 (off) to 5 (trace).
    pub max_level: extern "C" fn() -> u32,
    /// Records the reason of an error with C code `code` on the host's calling thread (see
    /// [`crate::error::Error::with_reason`]); `reason` is UTF-8, valid for the call only.
    pub reason: extern "C" fn(code: i32, reason: CSliceRef<u8>),
}

fn level_from(n: u32) -> Option<log::Level> {
    Some(match n {
        1 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        4 => log::Level::Debug,
        5 => log::Level::Trace,
        _ => return None,
    })
}

extern "C" fn host_log(level: u32, target: CSliceRef<u8>, message: CSliceRef<u8>) {
    let Some(level) = level_from(level) else { return };
    let target = String::from_utf8_lossy(&target);
    let message = String::from_utf8_lossy(&message);
    log::logger().log(&log::Record::builder().level(level).target(&target).args(format_args!("{message}")).build());
}

extern "C" fn host_max_level() -> u32 {
    log::max_level() as usize as u32
}

extern "C" fn host_reason(code: i32, reason: CSliceRef<u8>) {
    crate::error::reason::record(code, crate::error::reason::bounded(String::from_utf8_lossy(&reason)));
}

static HOST: PluginLogger = PluginLogger { log: host_log, max_level: host_max_level, reason: host_reason };

/// Plugin side: passes a reason on to the host.
fn forward_reason(code: i32, reason: &str) {
    if let Some(host) = HOST_ENTRY.get() {
        (host.reason)(code, reason.as_bytes().into());
    }
}

/// Plugin side: the host's entry points, once installed.
static HOST_ENTRY: OnceLock<PluginLogger> = OnceLock::new();

/// Forwards a plugin's records to the host. A static, so installing it allocates nothing
/// that could outlive the library.
struct Forwarder;

static FORWARDER: Forwarder = Forwarder;

impl log::Log for Forwarder {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        HOST_ENTRY.get().is_some_and(|h| metadata.level() as usize as u32 <= (h.max_level)())
    }

    fn log(&self, record: &log::Record) {
        if let (Some(host), true) = (HOST_ENTRY.get(), self.enabled(record.metadata())) {
            let message = record.args().to_string();
            (host.log)(record.level() as usize as u32, record.target().as_bytes().into(), message.as_bytes().into());
        }
    }

    fn flush(&self) {}
}

impl PluginLogger {
    /// The logger of this module, to hand to plugins.
    pub fn host() -> &'static PluginLogger {
        &HOST
    }

    /// Plugin side: routes this module's `log` records to the host, once. Does nothing when
    /// called in the host itself (a built-in plugin), which already logs there.
    pub fn install(&self) {
        if self.log as usize == HOST.log as usize {
            return;
        }
        if HOST_ENTRY.set(*self).is_ok() {
            crate::error::reason::set_sink(forward_reason);
            if log::set_logger(&FORWARDER).is_ok() {
                log::set_max_level(log::LevelFilter::Trace);
            }
        }
    }
}
