//! The guest kernels: Debian kernel packages fetched with `apt-get download` and unpacked with
//! `dpkg-deb -x` (never installed on the host), cached in `target/fixtures/kernels/<package>_<version>/`
//! (from the host's apt sources) or `target/fixtures/kernels/<suite>/<package>_<version>/`
//! (from a named Debian suite) with the kernel (`vmlinuz`), its `config`, `System.map`
//! (Debian's is a placeholder), the [`GUEST_MODULES`] (uncompressed) under `modules/`, and
//! `package.txt` (package, version, release).
//!
//! A named suite (e.g. `trixie` for kernel 6.12 on a bookworm host) is read through a private
//! apt state per architecture in `target/fixtures/kernels/<suite>/apt/<arch>/`: its own sources
//! list (the suite's `main` from [`DEBIAN_MIRROR`]), lists and cache, given to apt with `-c`.
//! The host's apt configuration, lists and cache are left alone. For architectures whose
//! busybox is [`Busybox::Download`], the suite's `busybox-static` of that architecture is
//! unpacked next to the kernel.

use std::cmp::Ordering;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::arch::{Arch, Busybox};
use crate::{deps, is_root, lock_file, log, output_of, output_of_command, run_command, Scratch};

/// Modules of the kernel package (paths under `[usr/]lib/modules/<release>/`, where trixie's
/// have `.xz` appended) that go into the
/// initramfs and that `scripts/guest-init.sh` loads: small ones without dependencies, so the
/// guest has a kernel module list to report.
pub const GUEST_MODULES: [&str; 2] = ["kernel/drivers/net/dummy.ko", "kernel/lib/crc7.ko"];

/// The Debian mirror of the private apt states: the one the apt sources of the project's
/// machines name.
const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// The keys that sign Debian's suites (package `debian-archive-keyring`; bookworm's has
/// trixie's keys too).
const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Which of Debian's kernel builds a guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// `linux-image-cloud-<arch>`: few drivers, boots fast.
    Cloud,
    /// `linux-image-<arch>`: the distribution's general kernel.
    Generic,
    /// `linux-image-<arch>-16k`: the general kernel with 16 KiB pages (Debian builds it for
    /// arm64).
    Generic16k,
}

impl Flavour {
    /// Parses `cloud` or `generic`.
    pub fn parse(text: &str) -> Result<Flavour, String> {
        match text {
            "cloud" => Ok(Flavour::Cloud),
            "generic" => Ok(Flavour::Generic),
            "generic-16k" => Ok(Flavour::Generic16k),
            _ => Err("--kernel must be [SUITE/]cloud, [SUITE/]generic or [SUITE/]generic-16k".into()),
        }
    }

    /// `cloud`, `generic` or `generic-16k`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Cloud => "cloud",
            Flavour::Generic => "generic",
            Flavour::Generic16k => "generic-16k",
        }
    }

    /// The metapackage that depends on the current kernel package of this flavour.
    fn metapackage(self, arch: &Arch) -> String {
        match self {
            Flavour::Cloud => format!("linux-image-cloud-{}", arch.debian),
            Flavour::Generic => format!("linux-image-{}", arch.debian),
            Flavour::Generic16k => format!("linux-image-{}-16k", arch.debian),
        }
    }

    /// True if `package` (e.g. `linux-image-6.1.0-57-cloud-amd64`) is a kernel of this flavour.
    fn matches(self, arch: &Arch, package: &str) -> bool {
        let Some(rest) = package.strip_prefix("linux-image-") else { return false };
        match self {
            Flavour::Cloud => rest.ends_with(&format!("-cloud-{}", arch.debian)),
            Flavour::Generic => rest
                .strip_suffix(&format!("-{}", arch.debian))
                .is_some_and(|release| release.ends_with(|c: char| c.is_ascii_digit())),
            Flavour::Generic16k => rest
                .strip_suffix(&format!("-{}-16k", arch.debian))
                .is_some_and(|release| release.ends_with(|c: char| c.is_ascii_digit())),
        }
    }
}

/// Which Debian kernel a guest runs, written `FLAVOUR` (from the host's apt sources) or
/// `SUITE/FLAVOUR` (from that Debian suite, through a private apt state), e.g. `trixie/cloud`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSpec {
    /// The Debian suite, e.g. `trixie`; `None`: the suite the host's apt sources have.
    pub suite: Option<String>,
    /// The kernel build.
    pub flavour: Flavour,
}

impl KernelSpec {
    /// Parses `cloud`, `generic`, `SUITE/cloud` or `SUITE/generic`.
    pub fn parse(text: &str) -> Result<KernelSpec, String> {
        let (suite, flavour) = match text.split_once('/') {
            Some((suite, flavour)) => (Some(suite), flavour),
            None => (None, text),
        };
        // The suite names a directory and goes into a sources list.
        let suite_ok = |suite: &str| {
            suite.starts_with(|c: char| c.is_ascii_lowercase())
                && suite.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if let Some(suite) = suite.filter(|s| !suite_ok(s)) {
            return Err(format!("invalid Debian suite '{suite}' in --kernel {text}"));
        }
        Ok(KernelSpec { suite: suite.map(str::to_owned), flavour: Flavour::parse(flavour)? })
    }

    /// Where this kernel's packages are cached.
    fn cache_dir(&self) -> PathBuf {
        match &self.suite {
            Some(suite) => cache_dir().join(suite),
            None => cache_dir(),
        }
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.suite {
            Some(suite) => write!(f, "{suite}/{}", self.flavour.as_str()),
            None => f.write_str(self.flavour.as_str()),
        }
    }
}

/// How apt is run to find and download a kernel.
enum Apt {
    /// With the host's configuration, sources and lists.
    Host,
    /// With this configuration file (`-c`), which gives apt a private sources list, lists and
    /// cache.
    Private(PathBuf),
}

impl Apt {
    /// A private apt state in `dir` for the `main` component of `suite` for `arch`; (re)writes
    /// its configuration and sources list.
    fn private(arch: &Arch, suite: &str, dir: &Path) -> Result<Apt, String> {
        let lists = dir.join("lists");
        let cache = dir.join("cache");
        for partial in [lists.join("partial"), cache.join("archives/partial")] {
            std::fs::create_dir_all(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
        }
        let sources = dir.join("sources.list");
        let line = format!(
            "deb [arch={} target=Packages signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {suite} main\n",
            arch.debian
        );
        std::fs::write(&sources, line).map_err(|e| format!("{}: {e}", sources.display()))?;
        // Everything apt reads or writes besides its configuration files is private; the
        // host's update hooks (they refresh host caches) and pinning are dropped.
        let mut config = format!(
            "Dir::Etc::SourceList \"{}\";\n\
             Dir::Etc::SourceParts \"/dev/null\";\n\
             Dir::Etc::Preferences \"/dev/null\";\n\
             Dir::Etc::PreferencesParts \"/dev/null\";\n\
             Dir::State::Lists \"{}\";\n\
             Dir::State::status \"/dev/null\";\n\
             Dir::Cache \"{}\";\n\
             APT::Architecture \"{arch}\";\n\
             #clear APT::Architectures;\n\
             APT::Architectures {{ \"{arch}\"; }};\n\
             #clear APT::Update::Pre-Invoke;\n\
             #clear APT::Update::Post-Invoke;\n\
             #clear APT::Update::Post-Invoke-Success;\n",
            sources.display(),
            lists.display(),
            cache.display(),
            arch = arch.debian,
        );
        if is_root() {
            config += "APT::Sandbox::User \"root\";\n"; // silences apt's warning about the _apt user
        }
        let file = dir.join("apt.conf");
        std::fs::write(&file, config).map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(Apt::Private(file))
    }

    /// `program` (`apt-get` or `apt-cache`) with the options that select this state.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        match self {
            Apt::Host if is_root() => {
                command.args(["-o", "APT::Sandbox::User=root"]); // silences apt's warning about the _apt user
            }
            Apt::Host => {}
            Apt::Private(config) => {
                command.arg("-c").arg(config);
            }
        }
        command
    }

    /// The standard output of `apt-cache ARGS`, or why it failed.
    fn cache(&self, args: &[&str]) -> Result<String, String> {
        output_of_command(self.command("apt-cache").args(args))
    }

    /// `apt-get update`: of the host's lists as root, of a private state's as anyone.
    fn update(&self) -> Result<(), String> {
        match self {
            Apt::Host => deps::apt_get(&["update"]),
            Apt::Private(_) => run_command(self.command("apt-get").arg("update")),
        }
    }
}

/// A kernel in the cache.
pub struct Kernel {
    /// Its cache directory.
    pub dir: PathBuf,
    /// The Debian package, e.g. `linux-image-6.1.0-57-cloud-amd64`.
    pub package: String,
    /// The package version, e.g. `6.1.192-3`.
    pub version: String,
}

impl Kernel {
    /// The kernel image.
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }

    /// The directory with the [`GUEST_MODULES`].
    pub fn modules(&self) -> PathBuf {
        self.dir.join("modules")
    }

    /// The static busybox of the kernel's suite and architecture, for architectures whose
    /// busybox is [`Busybox::Download`].
    pub fn busybox(&self) -> PathBuf {
        self.dir.join("busybox")
    }
}

/// The kernels' cache directory.
pub fn cache_dir() -> PathBuf {
    crate::fixture::fixtures_dir().join("kernels")
}

/// The current kernel of `spec` for `arch` from the cache, downloaded first if apt knows a
/// version the cache lacks. Without apt (offline), the newest cached kernel of the flavour
/// and suite. A private apt state's lists are refreshed every time (a conditional download
/// when nothing changed), so its candidate is one the mirror still has; the host's lists only
/// when apt does not know the metapackage. `tag` and `name` prefix the progress lines.
pub fn fetch(arch: &Arch, spec: &KernelSpec, tag: &str, name: &str) -> Result<Kernel, String> {
    let kernels = cache_dir();
    std::fs::create_dir_all(&kernels).map_err(|e| format!("{}: {e}", kernels.display()))?;
    let _lock = lock_file(&kernels.join(".lock"))?;
    let cache = spec.cache_dir();
    let apt = match &spec.suite {
        Some(suite) => Apt::private(arch, suite, &cache.join("apt").join(arch.debian))?,
        None => Apt::Host,
    };
    let metapackage = spec.flavour.metapackage(arch);
    let mut package = resolve(&apt, &metapackage);
    if package.is_none() || matches!(apt, Apt::Private(_)) {
        log(tag, name, format_args!("running apt-get update for {metapackage} ({spec})"));
        // Offline, this fails; the lists or the cache may still have a kernel.
        let _ = apt.update();
        package = resolve(&apt, &metapackage);
    }
    let dir = match package {
        Some(package) => {
            let version = candidate(&apt, &package)?;
            let dir = cache.join(format!("{package}_{}", version.replace(':', "%3a")));
            let with_busybox = arch.busybox == Busybox::Download;
            if !dir.join("vmlinuz").is_file()
                || !dir.join("modules").is_dir()
                || (with_busybox && !dir.join("busybox").is_file())
            {
                log(tag, name, format_args!("downloading {package} {version}"));
                download(&apt, arch, &package, &version, &cache, &dir)?;
            }
            dir
        }
        None => {
            let dir = newest_cached(arch, spec.flavour, &cache)
                .ok_or_else(|| format!("cannot resolve {metapackage} ({spec}) via apt and no cached kernel"))?;
            log(tag, name, format_args!("WARNING: apt cannot resolve {metapackage}; using cached {}", dir.display()));
            dir
        }
    };
    let info =
        std::fs::read_to_string(dir.join("package.txt")).map_err(|e| format!("{}/package.txt: {e}", dir.display()))?;
    let field = |key: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
            .ok_or_else(|| format!("{}/package.txt has no {key}=", dir.display()))
    };
    let kernel = Kernel { package: field("package")?, version: field("version")?, dir: dir.clone() };
    log(tag, name, format_args!("kernel: {} {} ({})", kernel.package, kernel.version, dir.display()));
    Ok(kernel)
}

/// The versioned kernel package the metapackage depends on (e.g. `linux-image-cloud-amd64`
/// -> `linux-image-6.1.0-57-cloud-amd64`), if apt knows it.
fn resolve(apt: &Apt, metapackage: &str) -> Option<String> {
    let out = apt.cache(&["depends", metapackage]).ok()?;
    out.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let dependency = match (fields.next(), fields.next()) {
            (Some("Depends:"), Some(dependency)) => dependency,
            _ => return None,
        };
        let version = dependency.strip_prefix("linux-image-")?;
        version.starts_with(|c: char| c.is_ascii_digit()).then(|| dependency.to_owned())
    })
}

/// The version apt would install of `package`.
fn candidate(apt: &Apt, package: &str) -> Result<String, String> {
    let out = apt.cache(&["policy", package])?;
    let version = out.lines().find_map(|l| l.trim_start().strip_prefix("Candidate:")).map(str::trim);
    match version {
        Some(version) if !version.is_empty() && version != "(none)" => Ok(version.to_owned()),
        _ => Err(format!("no candidate version for {package}")),
    }
}

/// Downloads `package=version` (a kernel of `arch`) and unpacks what the guests need into
/// `dir` (replacing it), with the candidate `busybox-static`'s busybox if `arch`'s busybox is
/// [`Busybox::Download`]; `cache` is the directory `dir` is in.
fn download(apt: &Apt, arch: &Arch, package: &str, version: &str, cache: &Path, dir: &Path) -> Result<(), String> {
    let tmp = Scratch::new_dir(cache, ".dl")?;
    let (deb, unpacked) = download_deb(apt, &format!("{package}={version}"), &tmp.path().join("kernel"))?;

    let boot = unpacked.join("boot");
    let vmlinuz = only_entry(&boot, arch.kernel_image, "")?;
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(arch.kernel_image))
        .ok_or_else(|| format!("odd kernel file name {}", vmlinuz.display()))?
        .to_owned();
    let kernel = tmp.path().join("k");
    std::fs::create_dir_all(kernel.join("modules")).map_err(|e| format!("{}: {e}", kernel.display()))?;
    if arch.busybox == Busybox::Download {
        let (_, unpacked) = download_deb(apt, "busybox-static", &tmp.path().join("busybox"))?;
        // `/bin` before Debian 13 (trixie), `/usr/bin` since.
        let busybox = ["bin/busybox", "usr/bin/busybox"]
            .into_iter()
            .map(|p| unpacked.join(p))
            .find(|p| p.is_file())
            .ok_or("busybox-static has no bin/busybox or usr/bin/busybox")?;
        copy(&busybox, &kernel.join("busybox"))?;
    }
    copy(&vmlinuz, &kernel.join("vmlinuz"))?;
    copy(&only_entry(&boot, "config-", "")?, &kernel.join("config"))?;
    // Bookworm's packages have `/lib/modules`, trixie's (merged /usr) `/usr/lib/modules`.
    let modules = ["lib/modules", "usr/lib/modules"]
        .into_iter()
        .map(|d| unpacked.join(d).join(&release))
        .find(|d| d.is_dir())
        .ok_or_else(|| format!("{package} has no lib/modules/{release}"))?;
    for module in GUEST_MODULES {
        let file_name = Path::new(module).file_name().unwrap_or_default();
        let to = kernel.join("modules").join(file_name);
        // Trixie's modules are xz-compressed; the guest's busybox insmod loads plain ones.
        let xz = modules.join(format!("{module}.xz"));
        if xz.is_file() {
            unxz(&xz, &to)?;
        } else {
            copy(&modules.join(module), &to).map_err(|e| format!("{package} has no {module}: {e}"))?;
        }
    }
    // Debian's System.map is an 83-byte placeholder ("The real System.map is in the
    // linux-image-<version>-dbg package"); kept anyway, where there is one.
    if let Ok(map) = only_entry(&boot, "System.map-", "") {
        copy(&map, &kernel.join("System.map"))?;
    }
    let deb_s = deb.to_str().ok_or("non-UTF-8 path")?;
    let field = |name: &str| output_of("dpkg-deb", &["-f", deb_s, name]).map(|v| v.trim().to_owned());
    let info = format!("package={}\nversion={}\nrelease={release}\n", field("Package")?, field("Version")?);
    std::fs::write(kernel.join("package.txt"), info).map_err(|e| format!("package.txt: {e}"))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    std::fs::rename(&kernel, dir).map_err(|e| format!("cannot move {} to {}: {e}", kernel.display(), dir.display()))
}

/// Downloads the package `spec` (`NAME` or `NAME=VERSION`) into the new directory `dir` and
/// unpacks it there; returns the `.deb` and the directory of its files.
fn download_deb(apt: &Apt, spec: &str, dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    run_command(apt.command("apt-get").args(["download", spec]).current_dir(dir))?;
    let deb = only_entry(dir, "", ".deb")?;
    let unpacked = dir.join("x");
    run_command(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    Ok((deb, unpacked))
}

/// Decompresses the xz file `from` into `to`.
fn unxz(from: &Path, to: &Path) -> Result<(), String> {
    let out = File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    run_command(Command::new("xz").arg("-dc").arg(from).stdout(out))
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to).map(drop).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// The one entry of `dir` whose name starts with `prefix` and ends with `suffix`.
fn only_entry(dir: &Path, prefix: &str, suffix: &str) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix)))
        .map(|e| e.path())
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(format!("{}: {n} entries {prefix}*{suffix}, expected one", dir.display())),
    }
}

/// The newest complete kernel of `flavour` in the cache directory `kernels` (by version order
/// of the names).
fn newest_cached(arch: &Arch, flavour: Flavour, kernels: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(kernels).ok()?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("package.txt").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.split_once('_').is_some_and(|(package, _)| flavour.matches(arch, package)))
        .collect();
    names.sort_by(|a, b| version_order(a, b));
    names.pop().map(|n| kernels.join(n))
}

/// Orders names as versions: runs of digits by their value, everything else by its bytes
/// (`6.1.0-9` before `6.1.0-10`).
fn version_order(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() && !b.is_empty() {
        let digits = a.starts_with(|c: char| c.is_ascii_digit());
        let run = |s: &str| s.find(|c: char| c.is_ascii_digit() != digits).unwrap_or(s.len());
        let (ra, rb) = (&a[..run(a)], &b[..run(b)]);
        let order = if digits && b.starts_with(|c: char| c.is_ascii_digit()) {
            let (ta, tb) = (ra.trim_start_matches('0'), rb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then(ta.cmp(tb))
        } else {
            ra.cmp(rb)
        };
        if order != Ordering::Equal {
            return order;
        }
        (a, b) = (&a[ra.len()..], &b[rb.len()..]);
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{AARCH64, RISCV64, X86_64};

    #[test]
    fn versions_order_by_number() {
        let mut names = ["k_6.1.0-10", "k_6.1.0-9", "k_6.10.0-1", "k_6.1.0-9a", "k_6.2"];
        names.sort_by(|a, b| version_order(a, b));
        assert_eq!(names, ["k_6.1.0-9", "k_6.1.0-9a", "k_6.1.0-10", "k_6.2", "k_6.10.0-1"]);
    }

    #[test]
    fn flavours_match_their_packages() {
        assert!(Flavour::Cloud.matches(&X86_64, "linux-image-6.1.0-57-cloud-amd64"));
        assert!(!Flavour::Generic.matches(&X86_64, "linux-image-6.1.0-57-cloud-amd64"));
        assert!(Flavour::Generic.matches(&X86_64, "linux-image-6.1.0-57-amd64"));
        assert!(!Flavour::Cloud.matches(&X86_64, "linux-image-6.1.0-57-amd64"));
        assert!(!Flavour::Generic.matches(&X86_64, "linux-image-rt-amd64"));
        assert!(Flavour::Cloud.matches(&X86_64, "linux-image-6.12.117+deb13-cloud-amd64"));
        assert!(Flavour::Generic.matches(&X86_64, "linux-image-6.12.117+deb13-amd64"));
        assert!(Flavour::Generic.matches(&AARCH64, "linux-image-6.12.117+deb13-arm64"));
        assert!(!Flavour::Generic.matches(&AARCH64, "linux-image-6.12.117+deb13-arm64-16k"));
        assert!(Flavour::Generic16k.matches(&AARCH64, "linux-image-6.12.117+deb13-arm64-16k"));
        assert!(!Flavour::Generic16k.matches(&AARCH64, "linux-image-6.12.117+deb13-arm64"));
        assert!(Flavour::Generic.matches(&RISCV64, "linux-image-6.12.117+deb13-riscv64"));
        assert!(!Flavour::Generic.matches(&AARCH64, "linux-image-6.12.117+deb13-riscv64"));
    }

    #[test]
    fn kernel_specs_parse_and_print() {
        for text in ["cloud", "generic", "trixie/cloud", "trixie-backports/generic", "trixie/generic-16k"] {
            assert_eq!(KernelSpec::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(KernelSpec::parse("trixie/cloud").unwrap().suite.as_deref(), Some("trixie"));
        for bad in ["rt", "trixie/rt", "/cloud", "../x/cloud", "Trixie/cloud", "a b/cloud", "trixie/x/cloud"] {
            assert!(KernelSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
