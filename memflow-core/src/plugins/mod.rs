//! Plugins: arguments and chains (descriptors and the inventory build on these).

pub mod args;

pub use args::{parse_chain, Args, ChainLink};
