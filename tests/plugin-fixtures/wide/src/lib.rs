//! The `coredump` plugin, built with 128-bit addresses.

memflow_core::export_plugin!(memflow_core::plugins::builtin::COREDUMP);
