//! The `dummy` plugin library: one file with two plugins, the synthetic memory connector and
//! the synthetic OS, loaded from a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use memflow_core::error::{ErrorKind, PartialResultExt};
use memflow_core::mem::{MemoryView, PhysicalMemory};
use memflow_core::os::{Os, Process};
use memflow_core::plugins::{ChainInstance, Inventory, PluginKind, PluginSource};
use memflow_core::types::Address;

use memflow_tests::{copy_into, shipped, temp_dir};

#[test]
fn one_library_gives_a_connector_and_an_os() {
    let dir = temp_dir("dummy");
    let lib = copy_into(&dir, &shipped("dummy"), "libmemflow_dummy.so");
    let mut inv = Inventory::default();
    let added = inv.add_file(&lib).unwrap();
    let mut kinds: Vec<_> = added.iter().map(|p| (p.name.as_str(), p.kind)).collect();
    kinds.sort_by_key(|(_, kind)| *kind as u32);
    assert_eq!(kinds, [("dummy", PluginKind::Connector), ("dummy", PluginKind::Os)]);
    assert!(added.iter().all(|p| matches!(&p.source, PluginSource::File(_))));
    let os_help = &added.iter().find(|p| p.kind == PluginKind::Os).unwrap().help;
    assert!(os_help.contains("procs"), "{os_help}");

    // The connector: synthetic memory through the library's code.
    let mut conn = inv.create_connector_chain("dummy:1M").unwrap();
    assert_eq!(conn.metadata().real_size, 1 << 20);
    let mut view = conn.phys_view();
    view.write_raw(Address::new(0x1000), b"dummy!").data().unwrap();
    assert_eq!(view.read_raw(Address::new(0x1000), 6).data().unwrap(), b"dummy!");
    assert!(
        matches!(inv.create_chain("dummy").unwrap(), ChainInstance::Connector(_)),
        "a lone `dummy` is the connector"
    );

    // The OS: processes, modules and memory.
    let mut os = inv.create_os_chain("dummy:procs=2,arch=riscv,seed=9").unwrap();
    let names: Vec<String> = os.process_info_list().unwrap().iter().map(|i| i.name.to_string()).collect();
    assert_eq!(names, ["init", "worker1"]);
    let mut process = os.process_by_name("worker1").unwrap();
    let libc = process.module_by_name("libc.so.6").unwrap();
    let header: [u8; 4] = process.read(libc.base).data().unwrap();
    assert_eq!(header, *b"\x7fELF");
    let malloc = process.export_address(&libc, "malloc").unwrap();
    assert!(malloc > libc.base && malloc < libc.base + libc.size);
    assert!(process.module_imports(&libc).unwrap().iter().any(|i| &*i.name == "__tls_get_addr"));
    assert!(!process.mapped_mem(0).unwrap().is_empty());
    let threads = process.thread_list().unwrap_err();
    assert_eq!(threads.kind, memflow_core::error::ErrorKind::Unsupported, "the dummy OS has no threads");
    let base = os.info().base;
    let kernel = os.as_mut_impl_memoryview().expect("the OS instance is the kernel's address space");
    let kernel_header: [u8; 4] = kernel.read(base).data().unwrap();
    assert_eq!(kernel_header, *b"\x7fELF");
    assert!(os.as_ref_impl_physicalmemory().is_some(), "and physical memory");
    assert_eq!(inv.create_os_chain("dummy:arch=vax").err().map(|e| e.kind), Some(ErrorKind::InvalidArgument));

    // The process keeps the library loaded after the OS and the inventory are gone.
    drop(os);
    drop(inv);
    let header: [u8; 4] = process.read(libc.base).data().unwrap();
    assert_eq!(header, *b"\x7fELF");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn os_and_process_instances_translate_where_the_layer_can() {
    use memflow_core::translate::VirtualTranslate;
    let inv = Inventory::builtin();
    let mut os = inv.create_os_chain("dummy:procs=2").unwrap();
    assert!(os.as_mut_impl_virtualtranslate().is_some(), "the synthetic kernel translates");
    let info = os.process_info_list().unwrap().remove(0);
    let mut process = os.process_by_info(info).unwrap();
    let module = process.primary_module().unwrap();
    let mut header = [0u8; 4];
    process.read_raw_into(module.base, &mut header).data().unwrap();
    let translate = process.as_mut_impl_virtualtranslate().expect("a synthetic process translates");
    let pa = translate.virt_to_phys(module.base).unwrap();
    let mut phys = [0u8; 4];
    os.as_mut_impl_physicalmemory().unwrap().phys_read_raw_into(pa, &mut phys).data().unwrap();
    assert_eq!(phys, header, "the translated address holds the bytes read virtually");
    // The native layer cannot translate host addresses: no such trait on its instances.
    let mut native = inv.create_os_chain("native").unwrap();
    assert!(native.as_mut_impl_virtualtranslate().is_none());
}
