//! Value scans with narrowing across runs (`scan value u32 100`, then `scan next changed`):
//! the candidates and their last values are kept in a state file between runs.

use std::cmp::Ordering;
use std::path::Path;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::cli::Region;
use crate::output::{Output, Row};
use crate::scan::{inc, scan_ranges, Hit, Pattern, Scope, READERS};
use crate::target::Target;
use crate::Failure;

/// The most candidates a value scan keeps: beyond that the value is too common to narrow
/// usefully (and the state file would be huge).
pub const MAX_CANDIDATES: usize = 1 << 20;

/// How many candidates are printed (all are kept in the state file).
pub const SHOWN: usize = 100;

/// The type of a scanned value (little-endian, aligned to its size).
#[derive(ValueEnum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// Unsigned 8-bit.
    U8,
    /// Unsigned 16-bit.
    U16,
    /// Unsigned 32-bit.
    U32,
    /// Unsigned 64-bit.
    U64,
    /// Signed 8-bit.
    I8,
    /// Signed 16-bit.
    I16,
    /// Signed 32-bit.
    I32,
    /// Signed 64-bit.
    I64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

/// How `scan next` narrows.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The value differs from the previous one.
    Changed,
    /// The value is the previous one.
    Unchanged,
    /// The value is larger than the previous one.
    Increased,
    /// The value is smaller than the previous one.
    Decreased,
    /// The value equals VALUE.
    Equal,
}

impl ValueType {
    /// The size in bytes.
    pub fn size(self) -> usize {
        match self {
            ValueType::U8 | ValueType::I8 => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 => 8,
        }
    }

    /// The little-endian bytes of `text` as this type.
    pub fn encode(self, text: &str) -> Result<Vec<u8>, Failure> {
        let bad = |e: &dyn std::fmt::Display| Failure::usage(format!("`{text}` is not a {self:?} value: {e}"));
        let int = |text: &str| -> Result<i128, Failure> {
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => i128::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.map_err(|e| bad(&e))
        };
        let fits = |v: i128, min: i128, max: i128| {
            if v < min || v > max {
                return Err(bad(&format_args!("out of range {min}..={max}")));
            }
            Ok(v)
        };
        let bytes = match self {
            ValueType::F32 => text.parse::<f32>().map_err(|e| bad(&e))?.to_le_bytes().to_vec(),
            ValueType::F64 => text.parse::<f64>().map_err(|e| bad(&e))?.to_le_bytes().to_vec(),
            _ => {
                let size = self.size() as u32;
                let signed = matches!(self, ValueType::I8 | ValueType::I16 | ValueType::I32 | ValueType::I64);
                let (min, max) = match signed {
                    true => (-(1i128 << (size * 8 - 1)), (1i128 << (size * 8 - 1)) - 1),
                    false => (0, (1i128 << (size * 8)) - 1),
                };
                fits(int(text)?, min, max)?.to_le_bytes()[..size as usize].to_vec()
            }
        };
        Ok(bytes)
    }

    /// The value of little-endian `bytes` (of this type's size) as text.
    pub fn decode(self, bytes: &[u8]) -> String {
        match (self, self.number(bytes)) {
            (ValueType::F32, Number::Float(v)) => (v as f32).to_string(),
            (_, Number::Float(v)) => v.to_string(),
            (_, Number::Int(v)) => v.to_string(),
        }
    }

    /// How the values of little-endian `a` and `b` compare (`None` for NaNs).
    pub fn compare(self, a: &[u8], b: &[u8]) -> Option<Ordering> {
        match (self.number(a), self.number(b)) {
            (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
            (Number::Float(a), Number::Float(b)) => a.partial_cmp(&b),
            _ => None,
        }
    }

    /// The value of little-endian `bytes` (of this type's size; missing bytes are zero).
    fn number(self, bytes: &[u8]) -> Number {
        let mut raw = [0u8; 8];
        let n = bytes.len().min(8);
        raw[..n].copy_from_slice(&bytes[..n]);
        let bits = u64::from_le_bytes(raw);
        match self {
            ValueType::U8 | ValueType::U16 | ValueType::U32 | ValueType::U64 => Number::Int(bits as i128),
            ValueType::I8 => Number::Int(bits as u8 as i8 as i128),
            ValueType::I16 => Number::Int(bits as u16 as i16 as i128),
            ValueType::I32 => Number::Int(bits as u32 as i32 as i128),
            ValueType::I64 => Number::Int(bits as i64 as i128),
            ValueType::F32 => Number::Float(f32::from_bits(bits as u32) as f64),
            ValueType::F64 => Number::Float(f64::from_bits(bits)),
        }
    }
}

/// A value of any [`ValueType`], widened.
enum Number {
    Int(i128),
    Float(f64),
}

/// What the state file keeps between runs.
#[derive(Serialize, Deserialize)]
pub struct State {
    /// The chain scanned.
    pub chain: String,
    /// The process scanned (its id), if a process was.
    pub pid: Option<u32>,
    /// Whether the kernel was scanned.
    pub kernel: bool,
    /// Whether physical memory was scanned.
    pub phys: bool,
    /// The values' type.
    pub value_type: ValueType,
    /// Each candidate: its address and its last value's bytes (little-endian).
    pub candidates: Vec<(u64, Vec<u8>)>,
}

impl State {
    fn region(&self) -> Region {
        Region { pid: self.pid.map(|p| p.to_string()), kernel: self.kernel, phys: self.phys, all_processes: false }
    }

    fn load(path: &Path) -> Result<State, Failure> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::error(format!("{}: {e} (start with `memflow scan value`)", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| Failure::error(format!("{}: not a value scan's state: {e}", path.display())))
    }

    fn save(&self, path: &Path) -> Result<(), Failure> {
        let text = serde_json::to_string(self).map_err(|e| Failure::error(format!("cannot encode the state: {e}")))?;
        // Written beside and renamed over, so an interrupted run leaves the previous state.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|e| Failure::error(format!("{}: {e}", path.display())))
    }
}

/// One candidate, as the value scans print it.
#[derive(Serialize)]
pub struct CandidateRow {
    /// Where it is, and in what.
    #[serde(flatten)]
    pub hit: Hit,
    /// Its value now.
    pub value: String,
}

impl Row for CandidateRow {
    const HEADERS: &'static [&'static str] = &["ADDRESS", "PID", "PROCESS", "MODULE", "OFFSET", "VALUE"];
    fn cells(&self) -> Vec<String> {
        let mut cells = self.hit.cells();
        cells.push(self.value.clone());
        cells
    }
}

/// `scan value` and `scan next` with `--json`.
#[derive(Serialize)]
pub struct Candidates {
    /// How many candidates remain.
    pub count: usize,
    /// The first of them (at most 100).
    pub shown: Vec<CandidateRow>,
}

fn report(scope: &Scope, state: &State, out: &Output) -> Result<(), Failure> {
    let shown: Vec<CandidateRow> = state
        .candidates
        .iter()
        .take(SHOWN)
        .map(|(address, bytes)| CandidateRow { hit: Hit::at(scope, *address), value: state.value_type.decode(bytes) })
        .collect();
    let count = state.candidates.len();
    if out.json() {
        return out.document(&Candidates { count, shown });
    }
    out.list(&shown)?;
    crate::output::print(&format!("{count} candidates\n"))
}

/// Runs `scan value TYPE VALUE`: every aligned place in `region` holding the value.
pub fn first(
    chain: &str,
    value_type: ValueType,
    value: &str,
    region: &Region,
    state_path: &Path,
    out: &Output,
) -> Result<(), Failure> {
    let bytes = value_type.encode(value)?;
    let pattern = Pattern::literal(&bytes).map_err(Failure::usage)?;
    let mut target = Target::open(chain)?;
    let scope = Scope::of(&mut target, region)?;
    let progress = out.progress(scope.bytes(), "scanning");
    let mut candidates = Vec::new();
    target.with_spaces(&scope.space, READERS, |mems| {
        scan_ranges(mems, &scope.ranges, &pattern, bytes.len() as u64, &mut |n| inc(&progress, n), |address| {
            candidates.push((address, bytes.clone()));
            candidates.len() <= MAX_CANDIDATES
        })
    })?;
    progress.finish_and_clear();
    if candidates.len() > MAX_CANDIDATES {
        return Err(Failure::error(format!(
            "more than {MAX_CANDIDATES} places hold {value}: scan for a rarer value or a smaller region"
        )));
    }
    let state = State {
        chain: chain.to_string(),
        pid: scope.process.as_ref().map(|p| p.0),
        kernel: region.kernel,
        phys: region.phys,
        value_type,
        candidates,
    };
    state.save(state_path)?;
    report(&scope, &state, out)
}

/// Runs `scan next CONDITION [VALUE]`: keeps the candidates whose value now meets the
/// condition, and remembers their new values.
pub fn next(
    chain: &str,
    condition: Condition,
    value: Option<&str>,
    state_path: &Path,
    out: &Output,
) -> Result<(), Failure> {
    let mut state = State::load(state_path)?;
    if state.chain != chain {
        return Err(Failure::usage(format!(
            "the value scan in {} was on chain `{}`, not `{chain}` (pass -c)",
            state_path.display(),
            state.chain
        )));
    }
    let wanted = match (condition, value) {
        (Condition::Equal, Some(v)) => Some(state.value_type.encode(v)?),
        (Condition::Equal, None) => return Err(Failure::usage("`scan next equal` needs a VALUE")),
        (_, Some(_)) => return Err(Failure::usage(format!("`scan next {condition:?}` takes no VALUE"))),
        (_, None) => None,
    };
    let mut target = Target::open(chain)?;
    let scope = Scope::of(&mut target, &state.region())?;
    let value_type = state.value_type;
    let mut now = vec![0u8; value_type.size()];
    let mut kept = Vec::new();
    target.with_space(&scope.space, |mem| {
        for (address, previous) in &state.candidates {
            if !mem.read(*address, &mut now)? {
                continue;
            }
            let order = value_type.compare(&now, previous);
            let keep = match condition {
                Condition::Changed => now != *previous,
                Condition::Unchanged => now == *previous,
                Condition::Increased => order == Some(Ordering::Greater),
                Condition::Decreased => order == Some(Ordering::Less),
                Condition::Equal => wanted.as_deref() == Some(&now[..]),
            };
            if keep {
                kept.push((*address, now.clone()));
            }
        }
        Ok(())
    })?;
    state.candidates = kept;
    state.save(state_path)?;
    report(&scope, &state, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_encode_in_their_range_and_compare_by_type() {
        assert_eq!(ValueType::U16.encode("0x1234").unwrap(), [0x34, 0x12]);
        assert_eq!(ValueType::I8.encode("-1").unwrap(), [0xff]);
        assert!(ValueType::U8.encode("256").unwrap_err().message.contains("out of range"));
        assert!(ValueType::I8.encode("128").is_err());
        assert!(ValueType::U32.encode("-1").is_err());
        assert!(ValueType::U32.encode("ten").is_err());
        assert_eq!(ValueType::F32.encode("1.5").unwrap(), 1.5f32.to_le_bytes());
        assert_eq!(ValueType::I16.decode(&[0xfe, 0xff]), "-2");
        // -1 < 1 as i8, though 0xff > 0x01 as bytes.
        assert_eq!(ValueType::I8.compare(&[0xff], &[0x01]), Some(Ordering::Less));
        assert_eq!(ValueType::U8.compare(&[0xff], &[0x01]), Some(Ordering::Greater));
        let nan = f64::NAN.to_le_bytes();
        assert_eq!(ValueType::F64.compare(&nan, &nan), None);
    }
}
