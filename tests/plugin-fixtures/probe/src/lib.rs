//! `probe`: a connector plugin whose create function logs a line at every level, then fails,
//! panics or succeeds with synthetic memory, as its arguments ask.

use memflow_core::error::{Error, ErrorKind, ErrorOrigin, Result};
use memflow_core::plugins::{
    connector_instance, Args, ConnectorInstanceArcBox, ConnectorPlugin, LibArc, OsInstanceArcBox, PluginDescriptor,
};

struct Probe;

impl ConnectorPlugin for Probe {
    const NAME: &'static str = "probe";
    const DESCRIPTION: &'static str = "test plugin";
    const HELP: &'static str = "probe:[fail|panic|ok]";

    fn create(
        args: &Args,
        _input: Option<OsInstanceArcBox<'static>>,
        lib: LibArc,
    ) -> Result<ConnectorInstanceArcBox<'static>> {
        log::error!("probe says error");
        log::warn!("probe says warn");
        log::info!("probe says info");
        log::debug!("probe says debug");
        match args.default_value() {
            Some("panic") => panic!("probe panics on request"),
            Some("fail") => Err(Error::new(ErrorOrigin::Connector, ErrorKind::NotFound)),
            _ => Ok(connector_instance(memflow_core::connector::dummy_memory(1 << 16), lib)),
        }
    }
}

memflow_core::export_plugin!(PluginDescriptor::connector::<Probe>());
