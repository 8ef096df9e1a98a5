//! `memflow` for Python: the extension module `memflow._memflow`, re-exported by the
//! `memflow` package (`python/memflow/`). Each class wraps the memflow-core object of the same
//! name; `space` holds what `Connector`, `Os` and `Process` share.

// `umem` is `u64` or `u128` (feature `128_bit_mem` of memflow-core); Python sees 64-bit
// addresses, and the casts are no-ops in the default width.
#![allow(clippy::unnecessary_cast, clippy::useless_conversion)]

mod buffer;
mod connector;
mod errors;
mod info;
mod inventory;
mod os;
mod process;
mod space;

use pyo3::prelude::*;

/// Physical memory introspection: processes, kernels, dumps and live guests.
#[pymodule]
fn _memflow(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<inventory::Inventory>()?;
    module.add_class::<inventory::PluginInfo>()?;
    module.add_class::<space::AddressSpace>()?;
    module.add_class::<connector::Connector>()?;
    module.add_class::<os::Os>()?;
    module.add_class::<process::Process>()?;
    module.add_class::<info::ProcessInfo>()?;
    module.add_class::<info::Thread>()?;
    module.add_class::<info::Module>()?;
    module.add_class::<info::Export>()?;
    module.add_class::<info::KernelSymbol>()?;
    module.add_class::<info::MemoryRange>()?;
    module.add_class::<info::Translation>()?;
    errors::register(module)?;
    Ok(())
}
