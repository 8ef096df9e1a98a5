//! The synthetic OS against its own truth, on every architecture.

use super::elf::gnu_hash;
use super::*;
use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, PartialError};
use crate::mem::{MemoryView, PhysicalMemory};
use crate::os::{MemoryRange, Os, Process, ProcessInfo, ProcessState};
use crate::plugins::{Args, Inventory, LibArc, OsInstanceArcBox};
use crate::translate::Page;
use crate::types::{umem, Address, PageType};

/// Bytes compared per region (a window or a heap is larger).
const COMPARED: umem = 256 << 10;

fn os_of(arch: ArchitectureIdent, names: &[&str]) -> DummyOs {
    names.iter().fold(DummyOs::builder().arch(arch).seed(7), |b, n| b.process(n)).build().unwrap()
}

/// The truth's pages merged into ranges as a page-map walk with gap 0 reports them: in
/// address order, neighbours with equal flags joined.
fn expected_ranges(pages: &[Page]) -> Vec<MemoryRange> {
    let mut pages = pages.to_vec();
    pages.sort_by_key(|m| m.va);
    let mut out: Vec<MemoryRange> = Vec::new();
    for m in pages {
        match out.last_mut() {
            Some(last) if last.page_type == m.page_type && last.base + last.size == m.va => last.size += m.size(),
            _ => out.push(MemoryRange { base: m.va, size: m.size(), page_type: m.page_type }),
        }
    }
    out
}

/// Checks one process through `process` (an opened instance) against `truth`, reading
/// physical memory through `os`.
fn check_process<P: Process + MemoryView>(os: &mut DummyOs, process: &mut P, truth: &DummyProcessTruth) {
    let name = &*truth.info.name;
    let mem_size = PhysicalMemory::metadata(os).real_size;
    for region in &truth.space.regions {
        let at = |what: &str| format!("{name} {}: {what}", region.name);
        // The bytes written read back, and the whole region reads like the memory behind it.
        let written = process.read_raw(region.base, region.data.len()).unwrap();
        assert!(written == region.data, "{}", at("written bytes"));
        let len = region.size.min(COMPARED).min(mem_size - region.phys.to_umem()) as usize;
        let virt = process.read_raw(region.base, len).unwrap();
        let phys = os.phys_view().read_raw(region.phys, len).unwrap();
        assert!(virt == phys, "{}", at("physical bytes"));
    }

    let modules = process.module_list().unwrap();
    let infos = |m: &crate::os::ModuleInfo| (m.name.to_string(), m.path.to_string(), m.base, m.size, m.parent);
    let want: Vec<_> = truth.space.modules.iter().map(|m| infos(&m.info)).collect();
    assert_eq!(modules.iter().map(infos).collect::<Vec<_>>(), want);
    assert_eq!(&*process.primary_module().unwrap().name, name);
    for module in &truth.space.modules {
        let found = process.module_by_name(&module.info.name.to_ascii_uppercase()).unwrap();
        assert_eq!(found.base, module.info.base, "by name, any case");
        let exports: Vec<_> =
            process.module_exports(&found).unwrap().iter().map(|e| (e.name.to_string(), e.offset)).collect();
        assert_eq!(exports, module.exports, "{name} {}", module.info.name);
        let imports: Vec<_> =
            process.module_imports(&found).unwrap().iter().map(|i| (i.name.to_string(), i.offset)).collect();
        assert_eq!(imports, module.imports);
        let sections: Vec<_> =
            process.module_sections(&found).unwrap().iter().map(|s| (s.name.to_string(), s.base, s.size)).collect();
        assert_eq!(sections, module.sections);
        for (export, _) in &module.exports {
            let addr = process.export_address(&found, export).unwrap();
            assert_eq!(process.read::<u32>(addr).unwrap(), gnu_hash(export), "the bytes of {export}");
        }
    }
    assert_eq!(process.mapped_mem(0).unwrap(), expected_ranges(&truth.space.pages));
    assert_eq!(process.mapped_mem(-1).unwrap(), expected_ranges(&truth.space.pages), "pages are not mappings");
    // A range query reports the pages that intersect it, whole.
    let heap = truth.space.regions.iter().find(|r| r.name == "heap").unwrap();
    let mut inside = Vec::new();
    process.mapped_mem_range(0, heap.base + 1 as umem, heap.base + 2 as umem, (&mut inside).into()).unwrap();
    let first_page = truth.space.pages.iter().find(|m| m.va == heap.base).unwrap();
    assert_eq!(inside, [MemoryRange { base: heap.base, size: first_page.size(), page_type: heap.page_type }]);
}

#[test]
fn every_architecture_matches_its_truth() {
    for &arch in ArchitectureIdent::EVERY_MODE {
        let mut os = os_of(arch, &["init", "sshd", "Bash"]);
        let infos = os.process_info_list().unwrap();
        assert_eq!(
            infos.iter().map(|i| (i.pid, i.ppid, i.name.to_string())).collect::<Vec<_>>(),
            [(1, 0, "init".to_string()), (2, 1, "sshd".to_string()), (3, 1, "Bash".to_string())]
        );
        for info in infos {
            assert_eq!((info.sys_arch, info.proc_arch, info.state), (arch, arch, ProcessState::Alive));
            let truth = os.truth(info.pid).unwrap();
            let mut process = os.process_by_info(info).unwrap();
            check_process(&mut os, &mut process, &truth);
        }
        let regions = os.truth(1).unwrap().space.regions;
        let sizes: Vec<u8> = os.truth(1).unwrap().space.pages.iter().map(|m| m.size_log2).collect();
        let leaves: Vec<u8> = arch.describe().unwrap().levels().iter().filter(|l| l.leaf).map(|l| l.shift).collect();
        assert!(sizes.contains(leaves.last().unwrap()), "{arch:?}: small pages");
        if leaves.contains(&30) {
            assert!(sizes.contains(&30) && regions.iter().any(|r| r.name == "window"), "{arch:?}: 1 GiB pages");
        }
        if leaves.contains(&21) {
            assert!(sizes.contains(&21), "{arch:?}: 2 MiB pages");
        }
    }
}

#[test]
fn the_process_view_differs_per_process_and_layouts_follow_the_seed() {
    let mut os = os_of(ArchitectureIdent::X86_64, &["a", "b"]);
    let (a, b) = (os.truth(1).unwrap(), os.truth(2).unwrap());
    let heap = |t: &DummyProcessTruth| t.space.regions.iter().find(|r| r.name == "heap").unwrap().clone();
    assert_ne!(heap(&a).data, heap(&b).data, "random contents");
    // b does not see a's heap unless their placements collide; its own heap is there.
    let mut pb = os.process_by_pid(2).unwrap();
    assert_eq!(pb.read_raw(heap(&b).base, 64).unwrap(), heap(&b).data[..64]);
    let again = os_of(ArchitectureIdent::X86_64, &["a", "b"]);
    assert_eq!(again.truth(2).unwrap().space.modules[1].info.base, b.space.modules[1].info.base);
    let other = DummyOs::builder().seed(8).process("a").build().unwrap();
    assert_ne!(other.truth(1).unwrap().space.modules[0].info.base, a.space.modules[0].info.base);
}

#[test]
fn kernel_space_modules_and_physical_memory() {
    for arch in [
        ArchitectureIdent::X86_64,
        ArchitectureIdent::X86Pae,
        ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 },
    ] {
        let mut os = os_of(arch, &["init"]);
        let kernel = os.kernel().clone();
        let names: Vec<String> = os.module_list().unwrap().iter().map(|m| m.name.to_string()).collect();
        assert_eq!(names, ["vmlinux", "dummy_blk.ko", "dummy_net.ko"]);
        assert_eq!(os.module_by_name("DUMMY_NET.KO").unwrap().base, kernel.modules[2].info.base);
        assert_eq!((os.info().base, os.info().size, os.info().arch), (kernel.modules[0].info.base, 0x3000, arch));
        assert!(kernel.regions.iter().all(|r| !r.page_type.contains(PageType::USER)), "kernel pages");
        // The kernel view reads the kernel image; its symbols are the image's exports.
        let header: [u8; 4] = os.read(os.info().base).unwrap();
        assert_eq!(header, *b"\x7fELF");
        let printk = os.kernel_symbol("printk").unwrap();
        assert_eq!(os.read::<u32>(printk).unwrap(), gnu_hash("printk"));
        assert_eq!(os.kernel_symbol("nope").unwrap_err().kind, ErrorKind::NotFound);
        // A kernel module's exports and sections are its image's.
        let net = os.module_by_name("dummy_net.ko").unwrap();
        let exports: Vec<String> = os.kernel_module_exports(&net).unwrap().iter().map(|e| e.name.to_string()).collect();
        assert!(exports.iter().any(|e| e == "net_dummy_init") && exports.iter().any(|e| e == "net_dummy_stats"));
        let init = os.kernel_module_exports(&net).unwrap().into_iter().find(|e| &*e.name == "net_dummy_init").unwrap();
        assert_eq!(os.read::<u32>(net.base + init.offset).unwrap(), gnu_hash("net_dummy_init"));
        assert!(os.kernel_module_sections(&net).unwrap().iter().any(|s| &*s.name == ".text"));
        // The symbol listing: the image's exports, then the modules'; the nearest below.
        let symbols = os.kernel_symbol_list().unwrap();
        let listed = symbols.iter().find(|s| &*s.name == "printk").unwrap();
        assert_eq!((listed.address, listed.kind, &*listed.module), (printk, b'T', ""));
        let listed = symbols.iter().find(|s| &*s.name == "net_dummy_init").unwrap();
        assert_eq!((listed.address, &*listed.module), (net.base + init.offset, "dummy_net.ko"));
        let at = os.kernel_symbol_by_address(printk + 1usize).unwrap();
        assert_eq!((&*at.name, at.address), ("printk", printk));
        assert_eq!(os.kernel_symbol_by_address(Address::from(1u64)).unwrap_err().kind, ErrorKind::NotFound);
        // What the dummy OS does not have.
        assert_eq!(os.type_size("task_struct").unwrap_err().kind, ErrorKind::Unsupported);
        // Physical memory is the memory behind it, single reads as batches.
        let region = &kernel.regions[0];
        assert_eq!(os.phys_view().read_raw(region.phys, 4).unwrap(), region.data[..4]);
        let end = PhysicalMemory::metadata(&os).max_address.to_umem() as u64 + 1;
        let phys = region.phys.to_umem() as u64;
        assert_eq!(crate::mem::partial::check::phys_read_agrees(&mut os, phys, 0x1000), 0x1000);
        assert_eq!(crate::mem::partial::check::phys_read_agrees(&mut os, end - 8, 16), 8);
    }
}

#[test]
fn killed_processes_vanish_and_fail_cleanly() {
    let os = os_of(ArchitectureIdent::X86_64La57, &["init", "victim"]);
    let mut instance: OsInstanceArcBox<'static> = crate::plugins::os_instance(os.clone(), LibArc::default());
    let info = instance.process_info_by_name("victim").unwrap();
    let mut process = instance.process_by_info(info.clone()).unwrap();
    let primary = process.primary_module().unwrap();
    let mut clone = os.clone();
    let mut direct = clone.process_by_pid(info.pid).unwrap();
    assert_eq!(process.read::<[u8; 4]>(primary.base).unwrap(), *b"\x7fELF");

    os.kill(info.pid).unwrap();
    assert_eq!(os.kill(info.pid).unwrap_err().kind, ErrorKind::NotFound);
    assert!(os.truth(info.pid).is_none());
    let names: Vec<String> = instance.process_info_list().unwrap().iter().map(|i| i.name.to_string()).collect();
    assert_eq!(names, ["init"], "the instance shares the process table");
    assert_eq!(instance.process_info_by_address(info.address).unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(instance.process_by_info(info.clone()).err().map(|e| e.kind), Some(ErrorKind::Gone));

    let gone = |e: PartialError<[u8; 4]>| Error::from(e).kind;
    for p in [&mut process, &mut direct] {
        assert_eq!(gone(p.read::<[u8; 4]>(primary.base).unwrap_err()), ErrorKind::Gone);
        assert_eq!(p.write_raw(primary.base, b"x").map_err(|e| Error::from(e).kind), Err(ErrorKind::Gone));
        assert_eq!(p.state(), ProcessState::Dead);
        assert_eq!(p.module_list().unwrap_err().kind, ErrorKind::Gone);
        assert_eq!(p.module_exports(&primary).unwrap_err().kind, ErrorKind::Gone);
        assert_eq!(p.primary_module_address().unwrap_err().kind, ErrorKind::Gone);
        assert_eq!(p.mapped_mem(0).unwrap_err().kind, ErrorKind::Gone);
        assert_eq!(p.info().pid, info.pid, "the record stays");
    }

    // A new process gets a new pid and handle and is seen through the instance.
    let new: ProcessInfo = os.add_process("late").unwrap();
    assert_eq!(new.pid, 3);
    assert_ne!(new.address, info.address);
    let mut late = instance.process_by_name("late").unwrap();
    let truth = os.truth(3).unwrap();
    check_process(&mut os.clone(), &mut late, &truth);
}

#[test]
fn memory_runs_out_cleanly() {
    let err = DummyOs::builder().memory(4 << 20).process("a").process("b").build().err().unwrap();
    assert_eq!(err.kind, ErrorKind::OutOfMemory);
    let os = DummyOs::builder().memory(8 << 20).build().unwrap();
    let mut added = 0;
    let err = loop {
        match os.add_process("p") {
            Ok(_) => added += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind, ErrorKind::OutOfMemory);
    assert!(added >= 1, "{added}");
}

#[test]
fn builtin_plugin_takes_its_arguments() {
    let inv = Inventory::builtin();
    let mut os = inv.create_os_chain("dummy").unwrap();
    let names: Vec<String> = os.process_info_list().unwrap().iter().map(|i| i.name.to_string()).collect();
    assert_eq!(names, ["init", "worker1", "worker2", "worker3"]);
    assert_eq!(os.info().arch, ArchitectureIdent::X86_64);
    assert!(os.process_by_name("worker2").unwrap().read::<u8>(Address::NULL).is_err(), "nothing is mapped at 0");

    let cases = [
        ("procs=2,arch=aarch64,seed=3", ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 }, 2),
        ("arch=riscv,procs=1", ArchitectureIdent::RiscVSv48, 1),
        ("arch=pae,size=32M", ArchitectureIdent::X86Pae, 4),
        ("arch=la57,procs=0", ArchitectureIdent::X86_64La57, 0),
    ];
    for (args, arch, procs) in cases {
        let mut os = inv.create_os("dummy", None, &Args::parse(args).unwrap()).unwrap();
        assert_eq!(os.info().arch, arch, "{args}");
        assert_eq!(os.process_info_list().unwrap().len(), procs, "{args}");
    }
    for bad in ["arch=sparc", "procs=many", "size=0", "bogus=1", "target", "procs=10,size=8M", "procs=100000"] {
        assert!(inv.create_os("dummy", None, &Args::parse(bad).unwrap()).is_err(), "{bad}");
    }
    // The connector of the same name is still there.
    assert!(inv.create_connector_chain("dummy:1M").is_ok());
}
