//! The truth the synthetic OS records: each process's record, regions, modules and pages.

use crate::os::{ModuleInfo, ProcessInfo};
use crate::translate::Page;
use crate::types::{umem, Address, PageType};

/// A mapped range of a synthetic address space: one kind of pages, contiguous in virtual and
/// physical memory.
#[derive(Clone, Debug)]
pub struct DummyRegion {
    /// What it holds: `heap`, `stack`, `window`, or `MODULE segment N`.
    pub name: String,
    /// First virtual address.
    pub base: Address,
    /// Length in bytes.
    pub size: umem,
    /// The flags of its pages, as a page walk reports them.
    pub page_type: PageType,
    /// Where it starts in physical memory.
    pub phys: Address,
    /// The bytes written at its start; the rest reads as the physical memory behind it
    /// (zeros, except for the window, which shows the tables and everything else).
    pub data: Vec<u8>,
}

/// A module and what a correct parser finds in its image.
#[derive(Clone, Debug)]
pub struct DummyModule {
    /// The record the OS reports.
    pub info: ModuleInfo,
    /// Exports with their offsets from the base.
    pub exports: Vec<(String, umem)>,
    /// Imports with the offsets of their slots from the base.
    pub imports: Vec<(String, umem)>,
    /// Allocated sections: name, address, size.
    pub sections: Vec<(String, Address, umem)>,
}

/// Everything in one address space.
#[derive(Clone, Debug)]
pub struct DummySpace {
    /// The root register values of its tables (two on AArch64).
    pub roots: Vec<Address>,
    /// Its modules, the main one first.
    pub modules: Vec<DummyModule>,
    /// Its mapped regions, by address.
    pub regions: Vec<DummyRegion>,
    /// Every page mapped, as the table builder recorded it.
    pub pages: Vec<Page>,
}

/// A process as the synthetic OS made it.
#[derive(Clone, Debug)]
pub struct DummyProcessTruth {
    /// The record the OS reports.
    pub info: ProcessInfo,
    /// Its address space.
    pub space: DummySpace,
}
