//! The `dummy` plugins as a library: the synthetic memory connector and the synthetic OS, the
//! built-in descriptors exported under two symbols.

memflow_core::export_plugin!(memflow_core::plugins::builtin::DUMMY_CONNECTOR);
memflow_core::export_plugin!(MEMFLOW_PLUGIN_OS = memflow_core::plugins::builtin::DUMMY_OS);
