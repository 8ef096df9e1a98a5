//! `cargo xtask deps`: installs the system packages the project needs (Debian, `apt-get`),
//! only those that are missing. The one list of them is here.

use std::process::Command;

use crate::arch::{Arch, Busybox, X86_64};
use crate::{is_root, on_path, output_of, run_command};

/// The host tools: (command, the Debian package that provides it).
const TOOLS: [(&str, &str); 7] = [
    ("cmake", "cmake"),
    ("pkg-config", "pkg-config"),
    ("cc", "gcc"),
    ("c++", "g++"),
    ("valgrind", "valgrind"),
    ("xz", "xz-utils"),
    // Reassembles QEMU's flattened kdump fixture into a plain one (`xtask::fixture`).
    ("makedumpfile", "makedumpfile"),
];

/// The packages of the list, and those of guests of `arch`, that are missing.
fn missing(arch: &Arch) -> Vec<&'static str> {
    let mut packages = Vec::new();
    if !on_path(arch.qemu) {
        packages.push(arch.qemu_package);
    }
    // Debian's `busybox` package is linked dynamically, useless in an initramfs without libc;
    // the static one is needed, unless BUSYBOX names a static busybox to use instead.
    if arch.busybox != Busybox::Download
        && std::env::var_os("BUSYBOX").is_none()
        && !package_installed("busybox-static")
    {
        packages.push("busybox-static");
    }
    for (command, package) in TOOLS {
        if !on_path(command) {
            packages.push(package);
        }
    }
    packages
}

fn package_installed(package: &str) -> bool {
    output_of("dpkg-query", &["-W", "-f=${db:Status-Status}", package]).is_ok_and(|status| status == "installed")
}

/// Installs the missing packages for x86-64 guests (`apt-get update`, then `apt-get
/// install`); does nothing when all are there.
pub fn ensure() -> Result<(), String> {
    ensure_for(&X86_64)
}

/// [`ensure`] for guests of `arch`.
pub fn ensure_for(arch: &Arch) -> Result<(), String> {
    let packages = missing(arch);
    if packages.is_empty() {
        return Ok(());
    }
    eprintln!("installing: {}", packages.join(" "));
    apt_get(&["update"])?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(packages);
    apt_get(&install)
}

/// Runs `apt-get ARGS` as root (through `sudo` when not root), non-interactively, waiting for
/// the dpkg lock if another apt holds it.
pub fn apt_get(args: &[&str]) -> Result<(), String> {
    let mut command = if is_root() {
        Command::new("env")
    } else if on_path("sudo") {
        let mut sudo = Command::new("sudo");
        sudo.arg("env");
        sudo
    } else {
        return Err(format!("need root (or sudo) to run: apt-get {}", args.join(" ")));
    };
    command.args(["DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", "DPkg::Lock::Timeout=600"]).args(args);
    run_command(&mut command)
}
