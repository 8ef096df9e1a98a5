//! Booting the fixture guest under QEMU: the shared part of `cargo xtask fixtures` (boot,
//! dump, quit) and of the live guests of `cargo xtask demo`, `cargo xtask guest` and the
//! integration tests (boot, keep running).
//!
//! A guest is a Debian kernel from the cache (`xtask::kernel`) with a busybox initramfs
//! (`xtask::initramfs`) whose `/init` is `scripts/guest-init.sh`, run by QEMU under TCG with
//! one vCPU. Once the guest printed `MEMFLOW-GUEST-READY` on its console it idles.
//! QEMU gets SIGKILL when the thread that started it ends, so no guest outlives its owner,
//! even one that is killed.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::arch::{self, Arch, Busybox, KallsymsPort};
use crate::kernel::{Flavour, Kernel, KernelSpec};
use crate::{deps, interrupt, kernel, log, root, Scratch};

/// The line the guest prints when its report is complete.
const READY: &str = "MEMFLOW-GUEST-READY";
/// How long a stopped QEMU may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often waiting loops look again.
const POLL: Duration = Duration::from_millis(500);

/// How to boot a guest: the options `cargo xtask fixtures` and `cargo xtask guest` take.
#[derive(Clone, Debug)]
pub struct GuestOptions {
    /// The guest architecture.
    pub arch: &'static Arch,
    /// QEMU's `-cpu` (`max`: 5-level paging where the kernel supports it).
    pub cpu: String,
    /// QEMU's `-m`, like `256M` or `5G`.
    pub mem: String,
    /// Added to the kernel command line (`console=... panic=-1`).
    pub append: String,
    /// Which Debian kernel.
    pub kernel: KernelSpec,
    /// Seconds to wait for the guest's ready line.
    pub timeout: u64,
}

impl Default for GuestOptions {
    fn default() -> Self {
        GuestOptions {
            arch: &arch::X86_64,
            cpu: "qemu64".into(),
            mem: "256M".into(),
            append: "nokaslr".into(),
            kernel: KernelSpec { suite: None, flavour: Flavour::Cloud },
            timeout: 300,
        }
    }
}

impl GuestOptions {
    /// Takes `flag` (`--arch`, `--cpu`, `--mem`, `--append`, `--kernel` or `--timeout`) with
    /// its value from `args`; false if `flag` is none of these.
    pub fn take(&mut self, flag: &str, args: &mut impl Iterator<Item = String>) -> Result<bool, String> {
        let known = ["--arch", "--cpu", "--mem", "--append", "--kernel", "--timeout"];
        if !known.contains(&flag) {
            return Ok(false);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag {
            "--arch" => self.arch = arch::by_debian_name(&value)?,
            "--cpu" => self.cpu = value,
            "--mem" => self.mem = value,
            "--append" => self.append = value,
            "--kernel" => self.kernel = KernelSpec::parse(&value)?,
            _ => self.timeout = value.parse().map_err(|_| "--timeout must be a number of seconds".to_string())?,
        }
        Ok(true)
    }

    /// Checks the values, and `name` (of the fixture or live guest).
    pub fn check(&self, name: &str) -> Result<(), String> {
        let name_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && name != "kernels";
        if !name_ok {
            return Err(format!("invalid name '{name}'"));
        }
        let digits = self.mem.trim_end_matches(['M', 'G']);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || self.mem.len() > digits.len() + 1 {
            return Err("--mem must look like 256M or 1G".into());
        }
        // Only the host's apt sources are used without a suite, and they have the host's
        // architecture only.
        if self.arch != &arch::X86_64 && self.kernel.suite.is_none() {
            return Err(format!("--arch {} needs --kernel SUITE/FLAVOUR", self.arch.debian));
        }
        Ok(())
    }

    /// The kernel of these options, from the cache (downloaded if needed); fails if `-cpu max`
    /// would not give 5-level paging with it.
    pub fn kernel(&self, tag: &str, name: &str) -> Result<Kernel, String> {
        let kernel = kernel::fetch(self.arch, &self.kernel, tag, name)?;
        if self.cpu == "max" {
            let config =
                std::fs::read_to_string(kernel.dir.join("config")).map_err(|e| format!("kernel config: {e}"))?;
            if !config.lines().any(|l| l == self.arch.five_level_config) {
                return Err(format!(
                    "{} is built without {}; --cpu max would not give a larger address space",
                    kernel.package, self.arch.five_level_config
                ));
            }
        }
        Ok(kernel)
    }
}

/// Makes the child started by `command` get SIGKILL when the thread that starts it ends.
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: prctl and getppid are async-signal-safe, the error needs no allocation, and
    // nothing of the parent is touched.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The parent may have died before prctl: then nobody would ever send the signal.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    }
}

/// A booted guest, stopped (and its files removed) when dropped.
pub struct Guest {
    qemu: Child,
    /// Where the guest's files are: a fresh directory under `/tmp` (a short path, for the
    /// unix socket's length limit).
    work: Scratch,
    /// Seconds from starting QEMU to the ready line.
    pub boot_seconds: f64,
}

impl Guest {
    /// Boots a guest with `kernel` and `options` plus `extra` QEMU arguments and `programs`
    /// (static executables) in the initramfs's `/bin`, and waits until it is ready. `tag` and `name` prefix the progress lines; `tag` also names the
    /// temporary directory.
    pub fn boot(
        tag: &str,
        name: &str,
        options: &GuestOptions,
        kernel: &Kernel,
        extra: &[&str],
        programs: &[&Path],
    ) -> Result<Guest, String> {
        let work = Scratch::new_dir(Path::new("/tmp"), &format!("memflow-{tag}"))?;
        let initrd = work.path().join("initrd.cpio");
        let arch = options.arch;
        let busybox = match (std::env::var_os("BUSYBOX"), &arch.busybox) {
            (Some(busybox), _) => PathBuf::from(busybox),
            (None, Busybox::Host(path)) => PathBuf::from(path),
            (None, Busybox::Download) => kernel.busybox(),
        };
        crate::initramfs::write(&initrd, &busybox, &root().join("scripts/guest-init.sh"), &kernel.modules(), programs)?;

        let dir = work.path();
        let file_arg = |file: &str| format!("file:{}", dir.join(file).display());
        // panic=-1 and -no-reboot: a guest panic makes QEMU exit at once instead of hanging
        // until the timeout.
        let mut cmdline = format!("console={} panic=-1", arch.console);
        if !options.append.is_empty() {
            cmdline = format!("{cmdline} {}", options.append);
        }
        let log_file = File::create(dir.join("qemu.log")).map_err(|e| format!("qemu.log: {e}"))?;
        let log_err = log_file.try_clone().map_err(|e| format!("qemu.log: {e}"))?;
        let cpu = if options.cpu == "max" { arch.cpu_max } else { &options.cpu };
        let mut command = Command::new(arch.qemu);
        command
            .args(["-machine", arch.machine, "-accel", "tcg", "-cpu", cpu, "-m", &options.mem, "-smp", "1"])
            .args(["-nodefaults", "-display", "none", "-monitor", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(kernel.vmlinuz())
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", &cmdline])
            // The console with the report sections, then ttyS1 with the complete /proc/kallsyms.
            .args(["-serial", &file_arg("serial.raw")]);
        match arch.kallsyms_port {
            KallsymsPort::SecondSerial => command.args(["-serial", &file_arg("kallsyms.txt")]),
            KallsymsPort::PciCard => command
                .args(["-chardev", "null,id=unused", "-chardev"])
                .arg(format!("file,id=kallsyms,path={}", dir.join("kallsyms.txt").display()))
                .args(["-device", "pci-serial-2x,chardev1=unused,chardev2=kallsyms"]),
            KallsymsPort::PciPort => command
                .arg("-chardev")
                .arg(format!("file,id=kallsyms,path={}", dir.join("kallsyms.txt").display()))
                .args(["-device", "pci-serial,chardev=kallsyms"]),
        };
        command
            .args(["-qmp", &format!("unix:{},server=on,wait=off", dir.join("qmp.sock").display())])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        die_with_parent(&mut command);
        log(tag, name, format_args!("booting: {}", crate::describe(&command)));
        let start = Instant::now();
        let qemu = command.spawn().map_err(|e| format!("cannot start {}: {e}", arch.qemu))?;
        let mut guest = Guest { qemu, work, boot_seconds: 0.0 };

        let deadline = start + Duration::from_secs(options.timeout);
        loop {
            if std::fs::read_to_string(guest.serial_raw()).is_ok_and(|s| s.contains(READY)) {
                break;
            }
            interrupt::check()?;
            if guest.exited() {
                return Err(guest.failure("QEMU exited before the guest was ready"));
            }
            if Instant::now() > deadline {
                return Err(guest.failure(&format!("guest not ready after {}s", options.timeout)));
            }
            std::thread::sleep(POLL);
        }
        guest.boot_seconds = start.elapsed().as_secs_f64();
        log(tag, name, format_args!("guest ready after {:.1}s", guest.boot_seconds));
        Ok(guest)
    }

    /// The console (first serial port) as QEMU writes it, CRs included: boot log, report
    /// sections, the ready line.
    pub fn serial_raw(&self) -> PathBuf {
        self.work.path().join("serial.raw")
    }

    /// The second serial port: the guest's complete `/proc/kallsyms`.
    pub fn kallsyms(&self) -> PathBuf {
        self.work.path().join("kallsyms.txt")
    }

    /// The QMP socket (a server for one client at a time).
    pub fn qmp(&self) -> PathBuf {
        self.work.path().join("qmp.sock")
    }

    /// The QEMU process.
    pub fn pid(&self) -> u32 {
        self.qemu.id()
    }

    /// True once QEMU has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.qemu.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for QEMU to exit by itself; true if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while !self.exited() {
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// The error of a failed boot: `what`, the end of the console and QEMU's output.
    fn failure(&self, what: &str) -> String {
        let serial = std::fs::read_to_string(self.serial_raw()).unwrap_or_default().replace('\r', "");
        let lines: Vec<&str> = serial.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        let qemu_log = std::fs::read_to_string(self.work.path().join("qemu.log")).unwrap_or_default();
        format!("{what}\n---- serial console (last 40 lines) ----\n{tail}\n---- qemu stdout/stderr ----\n{qemu_log}")
    }
}

impl Drop for Guest {
    /// SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL; then the files go (with `work`).
    fn drop(&mut self) {
        if !self.exited() {
            if let Ok(pid) = libc::pid_t::try_from(self.qemu.id()) {
                // SAFETY: plain kill(2) of our own child, not reaped yet.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            self.wait_exit(STOP_GRACE);
        }
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// A live guest for the demo, the tests and `cargo xtask guest`: the fixture guest of
/// `cloud-4l` (the cloud kernel, 256 MiB, `nokaslr`), named `memflow-test-<name>`, stopped
/// when dropped.
pub struct LiveGuest {
    guest: Guest,
    /// The guest's `-name`: `memflow-test-<name>`.
    pub name: String,
    /// The QEMU process.
    pub pid: u32,
    /// Its QMP socket.
    pub qmp: PathBuf,
    /// The guest console so far (boot log and report sections, CRs kept).
    pub serial: PathBuf,
}

impl LiveGuest {
    /// Boots the guest as `memflow-test-<name>` with the default [`GuestOptions`] (installing
    /// missing packages and fetching the kernel first) and waits until it reports ready.
    pub fn start(name: &str) -> Result<LiveGuest, String> {
        LiveGuest::start_with(name, &GuestOptions::default())
    }

    /// [`LiveGuest::start`] with other options.
    pub fn start_with(name: &str, options: &GuestOptions) -> Result<LiveGuest, String> {
        options.check(name)?;
        deps::ensure_for(options.arch)?;
        let kernel = options.kernel("live-guest", name)?;
        let qemu_name = format!("memflow-test-{name}");
        let guest = Guest::boot("live-guest", name, options, &kernel, &["-name", &qemu_name], &[])?;
        Ok(LiveGuest { name: qemu_name, pid: guest.pid(), qmp: guest.qmp(), serial: guest.serial_raw(), guest })
    }

    /// The guest's complete `/proc/kallsyms`.
    pub fn kallsyms(&self) -> PathBuf {
        self.guest.kallsyms()
    }

    /// Waits until QEMU exits or a caught signal arrives (see `xtask::interrupt`).
    pub fn wait(&mut self) {
        while !self.guest.exited() && interrupt::check().is_ok() {
            std::thread::sleep(POLL);
        }
    }
}
