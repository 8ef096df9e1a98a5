//! The chain a command runs on (`-c`), and the address spaces it offers: a process's, the
//! kernel's, physical memory.

use memflow_core::error::PartialError;
use memflow_core::os::{Os, ProcessInfo};
use memflow_core::plugins::{ChainInstance, Inventory};
use memflow_core::prelude::{MemoryView, OsInstanceArcBox, PhysicalMemory, ProcessInstanceArcBox};
use memflow_core::types::Address;

use crate::Failure;

/// An opened chain.
pub struct Target {
    chain: String,
    instance: ChainInstance,
}

/// Which address space to read, write or scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpaceKind {
    /// A process's, by id or name.
    Process(String),
    /// The kernel's (the OS layer's own view).
    Kernel,
    /// Physical memory.
    Physical,
}

impl Target {
    /// Builds `chain` from the plugins [`Inventory::scan`] finds.
    pub fn open(chain: &str) -> Result<Target, Failure> {
        let instance =
            Inventory::scan().create_chain(chain).map_err(|e| Failure::about(format!("chain `{chain}`"), e))?;
        Ok(Target { chain: chain.to_string(), instance })
    }

    /// The chain's text.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The chain's instance.
    pub fn instance(&mut self) -> &mut ChainInstance {
        &mut self.instance
    }

    /// The OS layer the chain ends in.
    pub fn os(&mut self) -> Result<&mut OsInstanceArcBox<'static>, Failure> {
        match &mut self.instance {
            ChainInstance::Os(os) => Ok(os),
            ChainInstance::Connector(_) => Err(Failure::usage(format!(
                "chain `{}` ends in a connector; this command needs an OS layer (e.g. `-c \"{} -> linux\"`)",
                self.chain, self.chain
            ))),
        }
    }

    /// Opens the process `selector` (a process id, else a name).
    pub fn process(&mut self, selector: &str) -> Result<ProcessInstanceArcBox<'static>, Failure> {
        let info = self.process_info(selector)?;
        let pid = info.pid;
        self.os()?.process_by_info(info).map_err(|e| Failure::about(format!("process {pid}"), e))
    }

    /// The process `selector` names (a process id, else a name).
    pub fn process_info(&mut self, selector: &str) -> Result<ProcessInfo, Failure> {
        let os = self.os()?;
        let found = match selector.parse() {
            Ok(pid) => os.process_info_by_pid(pid),
            Err(_) => os.process_info_by_name(selector),
        };
        found.map_err(|e| Failure::about(format!("process `{selector}`"), e))
    }

    /// Runs `f` on the address space `space`.
    pub fn with_space<R>(
        &mut self,
        space: &SpaceKind,
        f: impl FnOnce(&mut dyn Memory) -> Result<R, Failure>,
    ) -> Result<R, Failure> {
        match space {
            SpaceKind::Process(selector) => f(&mut self.process(selector)?),
            SpaceKind::Kernel => {
                let chain = self.chain.clone();
                let view = self.os()?.as_mut_impl_memoryview().ok_or_else(|| {
                    Failure::usage(format!(
                        "the OS layer of `{chain}` has no kernel address space: use --pid or --phys"
                    ))
                })?;
                f(view)
            }
            SpaceKind::Physical => {
                let chain = &self.chain;
                let no_phys = || Failure::usage(format!("chain `{chain}` has no physical memory"));
                match &mut self.instance {
                    ChainInstance::Connector(conn) => f(&mut conn.phys_view()),
                    ChainInstance::Os(os) => f(&mut os.as_mut_impl_physicalmemory().ok_or_else(no_phys)?.phys_view()),
                }
            }
        }
    }
}

/// An address space as the commands use it (any [`MemoryView`]).
pub trait Memory {
    /// Reads `out.len()` bytes at `address`: `Ok(true)` if all were readable, `Ok(false)` if
    /// some were not (those are zero).
    fn read(&mut self, address: u64, out: &mut [u8]) -> memflow_core::error::Result<bool>;

    /// Writes `data` at `address`, all of it or an error.
    fn write(&mut self, address: u64, data: &[u8]) -> memflow_core::error::Result<()>;
}

impl<T: MemoryView> Memory for T {
    fn read(&mut self, address: u64, out: &mut [u8]) -> memflow_core::error::Result<bool> {
        match self.read_raw_into(Address::from(address), out) {
            Ok(()) => Ok(true),
            Err(PartialError::PartialRead(())) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn write(&mut self, address: u64, data: &[u8]) -> memflow_core::error::Result<()> {
        self.write_raw(Address::from(address), data).map_err(Into::into)
    }
}
