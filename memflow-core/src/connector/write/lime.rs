//! LiME files: a range header (see [`crate::connector::lime`]) before the bytes of each run
//! of saved memory. A run's header is written when the run starts and completed when it ends.

use super::output::Output;
use super::{Plan, Sink};
use crate::connector::lime::{header, LIME_HEADER_SIZE, MAX_RANGES};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// The run being written: where its header is, its first address and one past its last.
#[derive(Copy, Clone)]
struct Run {
    header_at: u64,
    start: u64,
    end: u64,
}

#[derive(Default)]
pub(super) struct LimeSink {
    run: Option<Run>,
    runs: usize,
    /// Where the next bytes go.
    cursor: u64,
}

impl LimeSink {
    fn close(&mut self, out: &mut Output) -> Result<()> {
        match self.run.take() {
            Some(r) => out.write_at(r.header_at, &header(r.start, r.end - 1)),
            None => Ok(()),
        }
    }
}

impl Sink for LimeSink {
    fn begin(&mut self, _out: &mut Output, _plan: &Plan) -> Result<()> {
        Ok(())
    }

    fn data(&mut self, out: &mut Output, addr: u64, bytes: &[u8]) -> Result<()> {
        if self.run.is_none_or(|r| r.end != addr) {
            self.close(out)?;
            if self.runs == MAX_RANGES {
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded).with_reason(format_args!(
                    "the memory is split into more runs (by holes and gaps) than the {MAX_RANGES} ranges a LiME file may have here; next run at {addr:#x}"
                )));
            }
            self.runs += 1;
            // Completed by `close`; written now so that the bytes follow it in order.
            out.write_at(self.cursor, &header(addr, addr))?;
            self.run = Some(Run { header_at: self.cursor, start: addr, end: addr });
            self.cursor += LIME_HEADER_SIZE;
        }
        out.write_at(self.cursor, bytes)?;
        self.cursor += bytes.len() as u64;
        if let Some(r) = &mut self.run {
            r.end += bytes.len() as u64;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Output, _plan: &Plan) -> Result<()> {
        self.close(out)
    }
}
