//! The guest kernels: Debian kernel packages fetched with `apt-get download` and unpacked with
//! `dpkg-deb -x` (never installed on the host), cached in `target/fixtures/kernels/<package>_<version>/`
//! with the kernel (`vmlinuz`), its `config`, `System.map` (Debian's is a placeholder), the
//! [`GUEST_MODULES`] under `modules/`, and `package.txt` (package, version, release).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::arch::Arch;
use crate::{deps, is_root, lock_file, log, output_of, run_command, Scratch};

/// Modules of the kernel package (paths under `lib/modules/<release>/`) that go into the
/// initramfs and that `scripts/guest-init.sh` loads: small ones without dependencies, so the
/// guest has a kernel module list to report.
pub const GUEST_MODULES: [&str; 2] = ["kernel/drivers/net/dummy.ko", "kernel/lib/crc7.ko"];

/// Which of Debian's kernel builds a guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// `linux-image-cloud-<arch>`: few drivers, boots fast.
    Cloud,
    /// `linux-image-<arch>`: the distribution's general kernel.
    Generic,
}

impl Flavour {
    /// Parses `cloud` or `generic`.
    pub fn parse(text: &str) -> Result<Flavour, String> {
        match text {
            "cloud" => Ok(Flavour::Cloud),
            "generic" => Ok(Flavour::Generic),
            _ => Err("--kernel must be cloud or generic".into()),
        }
    }

    /// `cloud` or `generic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Cloud => "cloud",
            Flavour::Generic => "generic",
        }
    }

    /// The metapackage that depends on the current kernel package of this flavour.
    fn metapackage(self, arch: &Arch) -> String {
        match self {
            Flavour::Cloud => format!("linux-image-cloud-{}", arch.debian),
            Flavour::Generic => format!("linux-image-{}", arch.debian),
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
}

/// The kernels' cache directory.
pub fn cache_dir() -> PathBuf {
    crate::fixture::fixtures_dir().join("kernels")
}

/// The current kernel of `flavour` for `arch` from the cache, downloaded first if apt knows a
/// version the cache lacks. Without apt (offline), the newest cached kernel of the flavour.
/// `tag` and `name` prefix the progress lines.
pub fn fetch(arch: &Arch, flavour: Flavour, tag: &str, name: &str) -> Result<Kernel, String> {
    let kernels = cache_dir();
    std::fs::create_dir_all(&kernels).map_err(|e| format!("{}: {e}", kernels.display()))?;
    let _lock = lock_file(&kernels.join(".lock"))?;
    let metapackage = flavour.metapackage(arch);
    let mut package = resolve(&metapackage);
    if package.is_none() {
        log(tag, name, format_args!("apt-cache does not know {metapackage}; running apt-get update"));
        // Offline, this fails; the cache may still have a kernel.
        let _ = deps::apt_get(&["update"]);
        package = resolve(&metapackage);
    }
    let dir = match package {
        Some(package) => {
            let version = candidate(&package)?;
            let dir = kernels.join(format!("{package}_{}", version.replace(':', "%3a")));
            if !dir.join("vmlinuz").is_file() || !dir.join("modules").is_dir() {
                log(tag, name, format_args!("downloading {package} {version}"));
                download(&package, &version, &kernels, &dir)?;
            }
            dir
        }
        None => {
            let dir = newest_cached(arch, flavour, &kernels)
                .ok_or_else(|| format!("cannot resolve {metapackage} via apt and no cached kernel"))?;
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
fn resolve(metapackage: &str) -> Option<String> {
    let out = output_of("apt-cache", &["depends", metapackage]).ok()?;
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
fn candidate(package: &str) -> Result<String, String> {
    let out = output_of("apt-cache", &["policy", package])?;
    let version = out.lines().find_map(|l| l.trim_start().strip_prefix("Candidate:")).map(str::trim);
    match version {
        Some(version) if !version.is_empty() && version != "(none)" => Ok(version.to_owned()),
        _ => Err(format!("no candidate version for {package}")),
    }
}

/// Downloads `package=version` and unpacks what the guests need into `dir` (replacing it).
fn download(package: &str, version: &str, kernels: &Path, dir: &Path) -> Result<(), String> {
    let tmp = Scratch::new_dir(kernels, ".dl")?;
    let mut apt = Command::new("apt-get");
    if is_root() {
        apt.args(["-o", "APT::Sandbox::User=root"]); // silences apt's warning about the _apt user
    }
    apt.args(["download", &format!("{package}={version}")]).current_dir(tmp.path());
    run_command(&mut apt)?;
    let deb = only_entry(tmp.path(), "", ".deb")?;
    let unpacked = tmp.path().join("x");
    run_command(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;

    let boot = unpacked.join("boot");
    let vmlinuz = only_entry(&boot, "vmlinuz-", "")?;
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or_else(|| format!("odd kernel file name {}", vmlinuz.display()))?
        .to_owned();
    let kernel = tmp.path().join("k");
    std::fs::create_dir_all(kernel.join("modules")).map_err(|e| format!("{}: {e}", kernel.display()))?;
    copy(&vmlinuz, &kernel.join("vmlinuz"))?;
    copy(&only_entry(&boot, "config-", "")?, &kernel.join("config"))?;
    let modules = unpacked.join("lib/modules").join(&release);
    for module in GUEST_MODULES {
        let file_name = Path::new(module).file_name().unwrap_or_default();
        copy(&modules.join(module), &kernel.join("modules").join(file_name))
            .map_err(|e| format!("{package} has no {module}: {e}"))?;
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

/// The newest complete kernel of `flavour` in the cache (by version order of the names).
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
    use crate::arch::X86_64;

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
    }
}
