//! The `linux` OS layer as a plugin library: the built-in descriptor, exported.

memflow_core::export_plugin!(memflow_core::plugins::builtin::LINUX);
