//! The `qemu` plugin: descriptor, creation, arguments and target listing.

use crate::error::Result;
use crate::instance::*;
use crate::plugins::args::{parse_number, Args};
use crate::plugins::descriptor::*;

/// `qemu`: the RAM of a QEMU guest running on this host, read from the QEMU process.
pub struct Qemu;

impl ConnectorPlugin for Qemu {
    const NAME: &'static str = "qemu";
    const DESCRIPTION: &'static str =
        "A running QEMU guest's RAM, read from the QEMU process on this host; layout and CPU state from QMP if given";
    const HELP: &'static str = "qemu[:NAME][,pid=PID][,qmp=SOCKET]\n  NAME  the guest's -name (also `name=`); optional if one QEMU runs\n  pid   the QEMU process id\n  qmp   the guest's QMP socket: exact RAM layout and CPU registers\n  input an OS layer that sees the QEMU process (default: native)";

    fn create(
        args: &Args,
        input: Option<OsInstanceArcBox<'static>>,
        lib: LibArc,
    ) -> Result<ConnectorInstanceArcBox<'static>> {
        use crate::connector::qemu::{QemuConnector, QemuTarget};
        args.check_known(&["name", "pid", "qmp"])?;
        let pid = args.get("pid").map(|pid| parse_number("pid", pid)).transpose()?;
        let target = QemuTarget { name: args.target_or("name").map(str::to_owned), pid };
        let qmp = args.get("qmp").map(std::path::Path::new);
        let conn = match input {
            Some(os) => QemuConnector::open(os, &target, qmp)?,
            // The default input is this host's native layer: read the QEMU process directly.
            None => {
                let os = os_instance(crate::os::native::NativeOs::new(lib.clone()), lib.clone());
                QemuConnector::open_on_host(os, &target, qmp)?
            }
        };
        Ok(connector_instance(conn, lib))
    }

    /// Every QEMU process of the host: its guest name (or `pid=PID` when it has none).
    fn targets() -> Result<Vec<TargetInfo>> {
        let mut host = crate::os::native::NativeOs::new(LibArc::default());
        let qemus = crate::connector::qemu::qemu_processes(&mut host)?;
        Ok(qemus
            .iter()
            .map(|q| {
                let name = q.command_line.name.clone().unwrap_or_else(|| format!("pid={}", q.info.pid));
                TargetInfo { name: name.as_str().into(), description: q.describe().as_str().into() }
            })
            .collect())
    }
}

/// The `qemu` descriptor.
pub const QEMU: PluginDescriptor = PluginDescriptor::connector::<Qemu>();
