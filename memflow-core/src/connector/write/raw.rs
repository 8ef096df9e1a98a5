//! Raw images: byte `n` of the file is physical address `n`. What is not written (gaps of
//! the map, holes) stays sparse and reads back as zeros.

use super::output::Output;
use super::{Plan, Sink};
use crate::error::Result;

pub(super) struct RawSink;

impl Sink for RawSink {
    fn begin(&mut self, _out: &mut Output, _plan: &Plan) -> Result<()> {
        Ok(())
    }

    fn data(&mut self, out: &mut Output, addr: u64, bytes: &[u8]) -> Result<()> {
        out.write_at(addr, bytes)
    }

    fn finish(&mut self, out: &mut Output, plan: &Plan) -> Result<()> {
        out.set_len(plan.end())
    }
}
