//! The live-guest launcher shared by `cargo xtask demo` and the integration tests: boots the
//! fixture guest with `scripts/guest-run.sh` and owns it until dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::root;

/// How long a stopped guest's script may take to remove its files before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A guest booted by `scripts/guest-run.sh`, stopped when dropped.
///
/// The script gets SIGKILL when the thread that started it ends, and QEMU dies with the
/// script: no guest outlives its owner, even if the owner is killed.
pub struct LiveGuest {
    script: Child,
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
    /// Boots the guest as `memflow-test-<name>` and waits until it reports ready.
    pub fn start(name: &str) -> Result<LiveGuest, String> {
        eprintln!("+ bash scripts/guest-run.sh {name}");
        let mut command = Command::new("bash");
        command.arg(root().join("scripts/guest-run.sh")).arg(name).current_dir(root()).stdout(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches nothing of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut script = command.spawn().map_err(|e| format!("cannot start scripts/guest-run.sh: {e}"))?;
        let facts = script.stdout.take().map(read_facts).unwrap_or_default();
        let fact =
            |k: &str| facts.get(k).cloned().ok_or_else(|| format!("guest-run.sh failed (no {k}=); see its log above"));
        let guest = (|| {
            let pid = fact("pid")?.parse().map_err(|e| format!("guest-run.sh: pid: {e}"))?;
            Ok::<_, String>((pid, PathBuf::from(fact("qmp")?), PathBuf::from(fact("serial")?)))
        })();
        match guest {
            Ok((pid, qmp, serial)) => Ok(LiveGuest { script, name: format!("memflow-test-{name}"), pid, qmp, serial }),
            Err(e) => {
                let _ = script.kill();
                let _ = script.wait();
                Err(e)
            }
        }
    }
}

/// The `key=value` lines the script prints up to `ready` (all of them if it ends first).
fn read_facts(stdout: impl std::io::Read) -> HashMap<String, String> {
    let mut facts = HashMap::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line == "ready" {
            break;
        }
        if let Some((k, v)) = line.split_once('=') {
            facts.insert(k.to_owned(), v.to_owned());
        }
    }
    facts
}

impl Drop for LiveGuest {
    fn drop(&mut self) {
        // SIGTERM lets the script stop QEMU and remove its files; SIGKILL if it hangs
        // (QEMU then dies by its parent-death signal).
        if let Ok(pid) = libc::pid_t::try_from(self.script.id()) {
            // SAFETY: plain kill(2) of our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let start = Instant::now();
        while self.script.try_wait().ok().flatten().is_none() && start.elapsed() < STOP_GRACE {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.script.kill();
        let _ = self.script.wait();
    }
}
