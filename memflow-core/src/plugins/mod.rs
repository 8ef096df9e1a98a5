//! Plugins: descriptors, the inventory, arguments and chains, instances, logging.

pub mod args;
pub mod builtin;
pub mod c_abi;
pub mod c_input;
pub mod c_limits;
pub mod c_os;
pub mod c_plugin;
pub mod descriptor;
pub mod inventory;
pub mod library;
pub mod logging;
pub mod middleware;
pub mod records;
pub mod trust;

pub use crate::instance::*;
pub use args::{parse_chain, Args, ChainLink};
pub use descriptor::*;
pub use inventory::{ChainInstance, Inventory, PluginInfo, PluginSource, RefusedFile};
pub use logging::PluginLogger;
