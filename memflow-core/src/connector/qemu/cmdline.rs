//! What a QEMU command line says about the guest: the emulator's target architecture (from
//! the program's name), its name, machine type and RAM size.
//!
//! The command line comes from an OS layer as one string with the arguments separated by
//! spaces, so an argument containing spaces is seen as several; the options read here
//! (`-name`, `-m`, `-machine`/`-M`) hardly ever contain spaces. Option values are QEMU's
//! `key=value,...` lists whose first element may omit its key (`-name vm1,debug-threads=on`
//! is `guest=vm1`); QEMU's `,,` escape for commas inside values is not supported.

/// The facts of a QEMU command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QemuCommandLine {
    /// The emulator's target architecture, QEMU's name for it: `x86_64` for
    /// `qemu-system-x86_64`, `aarch64`, `riscv64`; `None` for `qemu-kvm` (no name says it).
    pub target: Option<String>,
    /// The guest name (`-name NAME` or `-name guest=NAME,...`).
    pub name: Option<String>,
    /// The machine type (`-machine TYPE`, `-machine type=TYPE,...`, `-M TYPE`); QEMU's
    /// default (`pc` on x86) if not given.
    pub machine: Option<String>,
    /// `-machine max-ram-below-4g=SIZE`, which changes the RAM layout.
    pub max_ram_below_4g: Option<u64>,
    /// `-machine memory-backend=ID`: RAM is a memory backend object.
    pub memory_backend: Option<String>,
    /// The RAM size in bytes (`-m SIZE` or `-m size=SIZE,...`; a number without unit is MiB).
    pub ram_size: Option<u64>,
}

/// The value of `key` in a QEMU option list, where `implied` is the key of a first element
/// given without one.
fn option_value<'a>(list: &'a str, implied: &str, key: &str) -> Option<&'a str> {
    list.split(',').enumerate().find_map(|(i, element)| match element.split_once('=') {
        Some((k, v)) if k == key => Some(v),
        None if i == 0 && implied == key => Some(element),
        _ => None,
    })
}

/// Parses a QEMU size: a number (fractions allowed) with an optional unit `B`, `K`, `M`,
/// `G`, `T` (any case; powers of 1024); `default_unit` applies without one.
pub fn parse_size(text: &str, default_unit: u64) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = match unit.to_ascii_uppercase().as_str() {
        "" => default_unit,
        "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    match number.split_once('.') {
        None => number.parse::<u64>().ok()?.checked_mul(unit),
        Some((whole, fraction)) => {
            let value: f64 = format!("{}.{fraction}", if whole.is_empty() { "0" } else { whole }).parse().ok()?;
            let bytes = value * unit as f64;
            (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes.round() as u64)
        }
    }
}

/// True if `program` (a path or a name) is a QEMU system emulator.
pub fn is_qemu(program: &str) -> bool {
    emulator_target(program).is_some() || program.rsplit('/').next() == Some("qemu-kvm")
}

/// The targets (see [`QemuCommandLine::target`]) of the x86 emulators.
pub const X86_TARGETS: [&str; 2] = ["x86_64", "i386"];

/// True if `target` (see [`QemuCommandLine::target`]) is one of [`X86_TARGETS`]. An
/// emulator whose name does not say its target (`qemu-kvm`) is taken for x86.
pub fn is_x86(target: Option<&str>) -> bool {
    target.is_none_or(|t| X86_TARGETS.contains(&t))
}

/// The target architecture of the QEMU system emulator `program` (a path or a name):
/// `aarch64` for `/usr/bin/qemu-system-aarch64`; `None` for other programs.
pub fn emulator_target(program: &str) -> Option<&str> {
    let base = program.rsplit('/').next().unwrap_or(program);
    base.strip_prefix("qemu-system-").filter(|target| !target.is_empty())
}

impl QemuCommandLine {
    /// Parses a space-separated command line whose first word is the program. Later options
    /// override earlier ones, as in QEMU.
    pub fn parse(command_line: &str) -> QemuCommandLine {
        let mut args = command_line.split_whitespace();
        let target = args.next().and_then(emulator_target).map(str::to_owned);
        let mut cmd = QemuCommandLine { target, ..Default::default() };
        while let Some(arg) = args.next() {
            // QEMU accepts `--opt` like `-opt`.
            let option = arg.strip_prefix('-').map(|a| a.strip_prefix('-').unwrap_or(a));
            let Some(option @ ("name" | "m" | "machine" | "M")) = option else { continue };
            let Some(value) = args.next() else { break };
            match option {
                "name" => cmd.name = option_value(value, "guest", "guest").map(str::to_owned),
                "m" => cmd.ram_size = option_value(value, "size", "size").and_then(|s| parse_size(s, 1 << 20)),
                _ => {
                    if let Some(machine) = option_value(value, "type", "type") {
                        cmd.machine = Some(machine.to_owned());
                    }
                    if let Some(size) = option_value(value, "", "max-ram-below-4g") {
                        cmd.max_ram_below_4g = parse_size(size, 1);
                    }
                    if let Some(backend) = option_value(value, "", "memory-backend") {
                        cmd.memory_backend = Some(backend.to_owned());
                    }
                }
            }
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256", 1 << 20), Some(256 << 20));
        assert_eq!(parse_size("256M", 1), Some(256 << 20));
        assert_eq!(parse_size("4194304k", 1 << 20), Some(4 << 30));
        assert_eq!(parse_size("1.5G", 1 << 20), Some(3 << 29));
        assert_eq!(parse_size("2g", 1 << 20), Some(2 << 30));
        assert_eq!(parse_size("4096B", 1 << 20), Some(4096));
        assert_eq!(parse_size("12X", 1), None);
        assert_eq!(parse_size("", 1), None);
        assert_eq!(parse_size("99999999999T", 1), None);
    }

    #[test]
    fn fixture_guest_command_line() {
        let line = "qemu-system-x86_64 -machine q35 -accel tcg -cpu qemu64 -m 256M -smp 1 -nodefaults \
                    -kernel /k/vmlinuz -append console=ttyS0 panic=-1 nokaslr -name memflow-test-a";
        let cmd = QemuCommandLine::parse(line);
        assert_eq!(cmd.name.as_deref(), Some("memflow-test-a"));
        assert_eq!(cmd.target.as_deref(), Some("x86_64"));
        assert_eq!(cmd.machine.as_deref(), Some("q35"));
        assert_eq!(cmd.ram_size, Some(256 << 20));
        assert_eq!((cmd.max_ram_below_4g, cmd.memory_backend), (None, None));
    }

    #[test]
    fn libvirt_style_command_line() {
        let line = "/usr/bin/qemu-system-x86_64 -name guest=win10,debug-threads=on -S \
                    -machine pc-q35-7.2,usb=off,memory-backend=pc.ram,max-ram-below-4g=2G \
                    -accel kvm -m size=4194304k -object memory-backend-ram,id=pc.ram,size=4294967296";
        let cmd = QemuCommandLine::parse(line);
        assert_eq!(cmd.name.as_deref(), Some("win10"));
        assert_eq!(cmd.machine.as_deref(), Some("pc-q35-7.2"));
        assert_eq!(cmd.ram_size, Some(4 << 30));
        assert_eq!(cmd.max_ram_below_4g, Some(2 << 30));
        assert_eq!(cmd.memory_backend.as_deref(), Some("pc.ram"));
    }

    #[test]
    fn defaults_overrides_and_programs() {
        let cmd = QemuCommandLine::parse("qemu-kvm --name vm2,process=x -M pc -machine accel=tcg -m 1G -m 2G");
        assert_eq!(cmd.name.as_deref(), Some("vm2"));
        assert_eq!(cmd.target, None, "qemu-kvm does not say its target");
        assert_eq!(cmd.machine.as_deref(), Some("pc"), "a -machine without a type keeps the type");
        assert_eq!(cmd.ram_size, Some(2 << 30));
        let aarch64 = QemuCommandLine { target: Some("aarch64".into()), ..Default::default() };
        assert_eq!(QemuCommandLine::parse("/opt/bin/qemu-system-aarch64"), aarch64);
        assert_eq!(QemuCommandLine::parse("qemu-system-aarch64 -name"), aarch64);
        let virt = QemuCommandLine::parse("qemu-system-riscv64 -M virt -m 1G");
        assert_eq!((virt.target.as_deref(), virt.machine.as_deref()), (Some("riscv64"), Some("virt")));
        assert_eq!(QemuCommandLine::parse(""), QemuCommandLine::default());
        assert!(
            is_qemu("/usr/bin/qemu-system-x86_64") && is_qemu("qemu-system-x86") && is_qemu("/usr/libexec/qemu-kvm")
        );
        assert!(!is_qemu("/usr/bin/qemu-img") && !is_qemu("bash") && !is_qemu("") && !is_qemu("qemu-system-"));
        assert_eq!(emulator_target("/usr/bin/qemu-system-riscv64"), Some("riscv64"));
        assert_eq!(emulator_target("qemu-kvm"), None);
    }
}
