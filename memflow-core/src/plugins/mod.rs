//! Plugins: descriptors, the inventory, arguments and chains, instances, logging.

pub mod args;
pub mod builtin;
pub mod c_plugin;
pub mod descriptor;
mod instances;
pub mod inventory;
pub mod library;
pub mod logging;
pub mod middleware;
pub mod trust;

pub use args::{parse_chain, Args, ChainLink};
pub use descriptor::*;
pub use instances::*;
pub use inventory::{ChainInstance, Inventory, PluginInfo, PluginSource};
pub use logging::PluginLogger;
