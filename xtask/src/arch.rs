//! What differs between guest architectures: every per-architecture fact of the guest
//! fixtures and the live guests is here, so that adding a guest architecture is one more
//! [`Arch`] value (and the guest code that reads registers from its dumps).

/// The facts of one guest architecture.
#[derive(Debug, PartialEq, Eq)]
pub struct Arch {
    /// Debian's name of the architecture (package names and suffixes: `linux-image-cloud-amd64`).
    pub debian: &'static str,
    /// The QEMU system emulator.
    pub qemu: &'static str,
    /// The Debian package that ships it.
    pub qemu_package: &'static str,
    /// The QEMU machine type.
    pub machine: &'static str,
    /// How the kernel image's name in the package's `/boot` starts (`vmlinuz-`, or `vmlinux-`
    /// for Debian's uncompressed riscv64 image).
    pub kernel_image: &'static str,
    /// The kernel's name of the serial console (`console=` on the command line).
    pub console: &'static str,
    /// How the guest gets the serial port `ttyS1` that carries `/proc/kallsyms`.
    pub kallsyms_port: KallsymsPort,
    /// Where busybox comes from for the initramfs.
    pub busybox: Busybox,
    /// `e_machine` of the guest's ELF core dumps.
    pub elf_machine: u16,
    /// Registers the dumps' notes lack, read from the monitor's `info registers` of the
    /// stopped guest into `meta.txt` (`cpu0_<name>=<hex>`) for the tests to check against.
    pub monitor_registers: &'static [&'static str],
    /// The kernel configuration line without which `-cpu max` gives the guest no larger
    /// virtual address space (5-level paging, 52-bit virtual addresses).
    pub five_level_config: &'static str,
    /// What `--cpu max` is on QEMU's command line.
    pub cpu_max: &'static str,
    /// The Rust target of programs built for the guest (AVML).
    pub rust_target: &'static str,
}

/// How a guest gets `ttyS1`, the serial port `scripts/guest-init.sh` sends `/proc/kallsyms` to.
#[derive(Debug, PartialEq, Eq)]
pub enum KallsymsPort {
    /// The machine's second serial port (`-serial`) is `ttyS1`.
    SecondSerial,
    /// The machine has one serial port (the console, not a 16550); a two-port PCI 16550 card
    /// (`pci-serial-2x`) gives `ttyS0` (unused) and `ttyS1`.
    PciCard,
    /// The machine has one serial port, a 16550 (`ttyS0`, the console); a one-port PCI 16550
    /// card (`pci-serial`) gives `ttyS1`.
    PciPort,
}

/// Where the static busybox of a guest's initramfs comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Busybox {
    /// This file of the host's Debian package `busybox-static` (installed by `cargo xtask deps`).
    Host(&'static str),
    /// Debian's `busybox-static` of the guest architecture, downloaded with the kernel (from
    /// the kernel's suite, never installed) into the kernel cache.
    Download,
}

/// x86-64 guests: the q35 machine, ttyS0.
pub const X86_64: Arch = Arch {
    debian: "amd64",
    qemu: "qemu-system-x86_64",
    qemu_package: "qemu-system-x86",
    machine: "q35",
    kernel_image: "vmlinuz-",
    console: "ttyS0",
    kallsyms_port: KallsymsPort::SecondSerial,
    busybox: Busybox::Host("/bin/busybox"),
    elf_machine: 62,
    monitor_registers: &[],
    five_level_config: "CONFIG_X86_5LEVEL=y",
    cpu_max: "max",
    rust_target: "x86_64-unknown-linux-gnu",
};

/// ARM64 guests: the `virt` machine (its PL011 UART is ttyAMA0).
pub const AARCH64: Arch = Arch {
    debian: "arm64",
    qemu: "qemu-system-aarch64",
    qemu_package: "qemu-system-arm",
    machine: "virt",
    kernel_image: "vmlinuz-",
    console: "ttyAMA0",
    kallsyms_port: KallsymsPort::PciCard,
    busybox: Busybox::Download,
    elf_machine: 183,
    monitor_registers: &[],
    five_level_config: "CONFIG_ARM64_VA_BITS_52=y",
    // QEMU's TCG emulates the architected pointer-authentication cipher (QARMA5) slowly: the
    // arm64-max guest booted in 85-174 s with it and in 24 s with the implementation-defined
    // one. The guest has pointer authentication either way.
    cpu_max: "max,pauth-impdef=on",
    rust_target: "aarch64-unknown-linux-gnu",
};

/// RISC-V guests: the `virt` machine (its 16550 UART is ttyS0), booted through QEMU's
/// bundled OpenSBI (`-bios default`, shipped by `qemu-system-data`). Debian's kernel is built
/// for Sv57 (`CONFIG_64BIT` gives five levels) and picks the largest mode the CPU offers.
pub const RISCV64: Arch = Arch {
    debian: "riscv64",
    qemu: "qemu-system-riscv64",
    qemu_package: "qemu-system-misc",
    machine: "virt",
    kernel_image: "vmlinux-",
    console: "ttyS0",
    kallsyms_port: KallsymsPort::PciPort,
    busybox: Busybox::Download,
    elf_machine: 243,
    // The page-table root and paging mode.
    monitor_registers: &["satp"],
    five_level_config: "CONFIG_PGTABLE_LEVELS=5",
    cpu_max: "max",
    rust_target: "riscv64gc-unknown-linux-gnu",
};

/// The guest architectures, the first the default.
pub const ALL: [&Arch; 3] = [&X86_64, &AARCH64, &RISCV64];

/// The architecture Debian names `debian` (`amd64`, `arm64`).
pub fn by_debian_name(debian: &str) -> Result<&'static Arch, String> {
    ALL.into_iter().find(|a| a.debian == debian).ok_or_else(|| {
        let names: Vec<&str> = ALL.iter().map(|a| a.debian).collect();
        format!("unknown guest architecture '{debian}' (known: {})", names.join(", "))
    })
}
