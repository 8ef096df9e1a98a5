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
        self.with_spaces(space, 1, |spaces| f(&mut *spaces[0]))
    }

    /// Runs `f` on `count` (at least one) handles of the address space `space`, each on its
    /// own clone of the process, OS layer or connector, so that each can read on its own
    /// thread.
    pub fn with_spaces<R>(
        &mut self,
        space: &SpaceKind,
        count: usize,
        f: impl FnOnce(&mut [&mut (dyn Memory + Send)]) -> Result<R, Failure>,
    ) -> Result<R, Failure> {
        let count = count.max(1);
        match space {
            SpaceKind::Process(selector) => {
                let mut procs = clones(self.process(selector)?, count);
                f(&mut procs.iter_mut().map(|p| p as &mut (dyn Memory + Send)).collect::<Vec<_>>())
            }
            SpaceKind::Kernel => {
                let chain = self.chain.clone();
                let mut oses = clones(self.os()?.clone(), count);
                let mut views = Vec::with_capacity(count);
                for os in &mut oses {
                    let view = os.as_mut_impl_memoryview().ok_or_else(|| {
                        Failure::usage(format!(
                            "the OS layer of `{chain}` has no kernel address space: use --pid or --phys"
                        ))
                    })?;
                    views.push(view as &mut (dyn Memory + Send));
                }
                f(&mut views)
            }
            SpaceKind::Physical => match &mut self.instance {
                ChainInstance::Connector(conn) => {
                    let mut views: Vec<_> =
                        clones(conn.clone(), count).into_iter().map(|c| c.into_phys_view()).collect();
                    f(&mut views.iter_mut().map(|v| v as &mut (dyn Memory + Send)).collect::<Vec<_>>())
                }
                ChainInstance::Os(os) => {
                    let chain = &self.chain;
                    let mut oses = clones(os.clone(), count);
                    let mut views = Vec::with_capacity(count);
                    for os in &mut oses {
                        let phys = os
                            .as_mut_impl_physicalmemory()
                            .ok_or_else(|| Failure::usage(format!("chain `{chain}` has no physical memory")))?;
                        views.push(phys.phys_view());
                    }
                    f(&mut views.iter_mut().map(|v| v as &mut (dyn Memory + Send)).collect::<Vec<_>>())
                }
            },
        }
    }
}

/// `first` and `count - 1` clones of it.
fn clones<T: Clone>(first: T, count: usize) -> Vec<T> {
    let mut all = vec![first.clone(); count.saturating_sub(1)];
    all.push(first);
    all
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
