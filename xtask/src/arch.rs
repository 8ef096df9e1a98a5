//! What differs between guest architectures: every per-architecture fact of the guest
//! fixtures and the live guests is here, so that adding a guest architecture is one more
//! [`Arch`] value (and the guest code that reads registers from its dumps).

/// The facts of one guest architecture.
pub struct Arch {
    /// Debian's name of the architecture (package names and suffixes: `linux-image-cloud-amd64`).
    pub debian: &'static str,
    /// The QEMU system emulator.
    pub qemu: &'static str,
    /// The Debian package that ships it.
    pub qemu_package: &'static str,
    /// The QEMU machine type.
    pub machine: &'static str,
    /// The kernel's name of the serial console (`console=` on the command line); the second
    /// serial port carries `/proc/kallsyms`.
    pub console: &'static str,
    /// The Debian package with a statically linked busybox for the initramfs.
    pub busybox_package: &'static str,
    /// Where that package puts busybox.
    pub busybox: &'static str,
    /// `e_machine` of the guest's ELF core dumps.
    pub elf_machine: u16,
    /// The kernel configuration line without which `-cpu max` gives no 5-level paging.
    pub five_level_config: &'static str,
    /// The Rust target of programs built for the guest (AVML).
    pub rust_target: &'static str,
}

/// x86-64 guests: the q35 machine, ttyS0.
pub const X86_64: Arch = Arch {
    debian: "amd64",
    qemu: "qemu-system-x86_64",
    qemu_package: "qemu-system-x86",
    machine: "q35",
    console: "ttyS0",
    busybox_package: "busybox-static",
    busybox: "/bin/busybox",
    elf_machine: 62,
    five_level_config: "CONFIG_X86_5LEVEL=y",
    rust_target: "x86_64-unknown-linux-gnu",
};

/// The architecture of the guests the fixtures and live tests boot.
pub const GUEST: &Arch = &X86_64;
