//! `scan yara RULES`: YARA rules over process, kernel or physical memory, through yara-x.
//!
//! Each address space is one piece of data to yara-x, fed to its block scanner chunk by chunk
//! at the chunks' own addresses, so a match's offset is its address. Consecutive chunks overlap
//! by [`OVERLAP`] bytes: a match up to that long is found across a chunk boundary, none across
//! an unreadable page.

use std::panic::AssertUnwindSafe;
use std::path::Path;

use serde::Serialize;
use yara_x::blocks::Scanner;
use yara_x::{Compiler, Rules, SourceCode};

use crate::cli::Region;
use crate::output::{Output, Row};
use crate::scan::{scan_each, scan_windows, Hit, Scope};
use crate::target::Memory;
use crate::Failure;

/// Bytes each chunk shares with the one before: the longest match found across chunks.
pub const OVERLAP: usize = 4096;

/// The largest rules file read (rule sets of real projects are a few MiB).
const MAX_RULES_FILE: u64 = 64 << 20;

/// One match of a rule: the rule, its pattern, and where.
#[derive(Serialize)]
pub struct YaraHit {
    /// The rule's name.
    pub rule: String,
    /// The pattern's identifier (`$a`), `null` for a rule that matched on its condition alone.
    pub pattern: Option<String>,
    /// The match's length in bytes.
    pub length: Option<usize>,
    /// Where: address, process, module and offset.
    #[serde(flatten)]
    pub at: Option<Hit>,
}

impl Row for YaraHit {
    const HEADERS: &'static [&'static str] =
        &["RULE", "PATTERN", "ADDRESS", "LENGTH", "PID", "PROCESS", "MODULE", "OFFSET"];
    fn cells(&self) -> Vec<String> {
        let mut cells = vec![self.rule.clone(), self.pattern.clone().unwrap_or_else(|| "-".into())];
        let at = match &self.at {
            Some(hit) => hit.cells(),
            None => vec!["-".into(); Hit::HEADERS.len()],
        };
        cells.push(at[0].clone());
        cells.push(self.length.map_or("-".into(), |l| l.to_string()));
        cells.extend(at.into_iter().skip(1));
        cells
    }
}

/// Compiles the rules in `path`. A rule error is reported on one line: the error and where.
pub fn compile(path: &Path) -> Result<Rules, Failure> {
    let size = std::fs::metadata(path).map_err(|e| Failure::error(format!("{}: {e}", path.display())))?.len();
    if size > MAX_RULES_FILE {
        return Err(Failure::usage(format!("{}: {size} bytes is more than a rules file holds", path.display())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Failure::error(format!("{}: {e}", path.display())))?;
    let origin = path.display().to_string();
    let mut compiler = Compiler::new();
    if let Err(error) = compiler.add_source(SourceCode::from(text.as_str()).with_origin(&origin)) {
        // yara-x renders errors as a multi-line report: the title, then `--> file:line:col`.
        let report = error.to_string();
        let mut lines = report.lines().map(str::trim);
        let title = lines.next().unwrap_or_default();
        let place = lines.find_map(|l| l.strip_prefix("--> ")).unwrap_or(origin.as_str());
        return Err(Failure::usage(format!("{place}: {title}")));
    }
    Ok(compiler.build())
}

/// Scans one address space's `scope` with `rules` (through `mems`, its handles: see
/// [`scan_windows`]) and appends what matched to `hits`, at most
/// `limit` in all. `progress` is called with the bytes of each chunk read, and stops the scan
/// by returning `false` (what matched until then is reported).
pub fn scan_scope(
    mems: &mut [&mut (dyn Memory + Send)],
    scope: &Scope,
    rules: &Rules,
    limit: usize,
    progress: &mut dyn FnMut(u64) -> bool,
    hits: &mut Vec<YaraHit>,
) -> Result<(), Failure> {
    let mut scanner = Scanner::new(rules);
    // Bounds what yara-x keeps while scanning, whatever the memory holds.
    scanner.max_matches_per_pattern(limit);
    let (mut failed, mut scanned) = (None, false);
    // yara-x's scanner is one state over the whole address space: it scans on this thread.
    let take = |address: u64, window: &[u8], _: Vec<()>| match usize::try_from(address) {
        Ok(base) => match scanner.scan(base, window) {
            Ok(_) => {
                scanned = true;
                true
            }
            Err(e) => {
                failed = Some(Failure::error(format!("YARA scan at {address:#x}: {e}")));
                false
            }
        },
        Err(_) => true,
    };
    scan_windows(mems, &scope.ranges, OVERLAP, progress, |_, _, _| {}, take)?;
    if let Some(failure) = failed {
        return Err(failure);
    }
    // Nothing readable: nothing matches (and yara-x cannot finish a scan of no blocks).
    if !scanned {
        return Ok(());
    }
    let results = scanner.finish().map_err(|e| Failure::error(format!("YARA scan: {e}")))?;
    for rule in results.matching_rules() {
        let before = hits.len();
        for pattern in rule.patterns() {
            for found in pattern.matches() {
                if hits.len() == limit {
                    return Ok(());
                }
                hits.push(YaraHit {
                    rule: rule.identifier().to_string(),
                    pattern: Some(pattern.identifier().to_string()),
                    length: Some(found.range().len()),
                    at: Some(Hit::at(scope, found.range().start as u64)),
                });
            }
        }
        if hits.len() == before && hits.len() < limit {
            // A rule true without any match of its own (e.g. `condition: true`), said once per
            // address space.
            hits.push(YaraHit {
                rule: rule.identifier().to_string(),
                pattern: None,
                length: None,
                at: scope.process.as_ref().map(|(pid, name)| Hit {
                    address: "-".into(),
                    pid: Some(*pid),
                    process: Some(name.clone()),
                    module: None,
                    offset: None,
                }),
            });
        }
    }
    Ok(())
}

/// Runs `scan yara RULES`.
pub fn command(chain: &str, rules: &Path, region: &Region, limit: usize, out: &Output) -> Result<(), Failure> {
    let rules = compile(rules)?;
    let hits = scan_each(chain, region, limit, out, |mems, scope, progress, hits| {
        // yara-x is third-party code running on bytes an attacker may have written: a panic in
        // it fails this scan with a reason instead of ending the tool.
        std::panic::catch_unwind(AssertUnwindSafe(|| scan_scope(mems, scope, &rules, limit, progress, hits)))
            .unwrap_or_else(|_| Err(Failure::error("yara-x failed (panicked) during the scan")))
    })?;
    out.list(&hits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::PAGE;
    use crate::scan::CHUNK;
    use crate::target::SpaceKind;

    /// Bytes at `base`; the page `hole` (an index) is unreadable.
    #[derive(Clone)]
    struct Pages {
        base: u64,
        bytes: Vec<u8>,
        hole: u64,
    }

    impl Memory for Pages {
        fn read(&mut self, address: u64, out: &mut [u8]) -> memflow_core::error::Result<bool> {
            let mut all = true;
            for (i, byte) in out.iter_mut().enumerate() {
                let offset = address + i as u64 - self.base;
                let readable = offset / PAGE as u64 != self.hole && offset < self.bytes.len() as u64;
                *byte = if readable { self.bytes[offset as usize] } else { 0 };
                all &= readable;
            }
            Ok(all)
        }

        fn write(&mut self, _: u64, _: &[u8]) -> memflow_core::error::Result<()> {
            unreachable!("scans do not write")
        }
    }

    fn rules(source: &str) -> Rules {
        let mut compiler = Compiler::new();
        compiler.add_source(source).unwrap();
        compiler.build()
    }

    fn scope(ranges: Vec<(u64, u64)>) -> Scope {
        Scope { space: SpaceKind::Physical, process: None, ranges, modules: vec![(0x10_0000, 0x1000, "first".into())] }
    }

    #[test]
    fn matches_are_found_at_their_addresses_across_chunks_and_never_across_a_hole() {
        let needle = b"yara-needle-0123456789";
        let base = 0x10_0000;
        let mut bytes = vec![0u8; 2 * CHUNK + 4 * PAGE];
        // Across the first chunk boundary, at the very start, and across the unreadable page.
        let hole = (CHUNK / PAGE + 2) as u64;
        for at in [0, CHUNK - 7, hole as usize * PAGE - 5] {
            bytes[at..at + needle.len()].copy_from_slice(needle);
        }
        let mut mem = Pages { base, bytes, hole };
        let size = mem.bytes.len() as u64;
        let rules = rules(r#"rule needle { strings: $n = "yara-needle-0123456789" condition: $n }"#);
        let mut hits = Vec::new();
        scan_scope(
            &mut [&mut mem.clone(), &mut mem],
            &scope(vec![(base, size)]),
            &rules,
            100,
            &mut |_| true,
            &mut hits,
        )
        .unwrap();
        let found: Vec<String> = hits.iter().map(|h| h.at.as_ref().unwrap().address.clone()).collect();
        assert_eq!(found, [format!("{base:#x}"), format!("{:#x}", base + CHUNK as u64 - 7)]);
        assert_eq!(hits[0].at.as_ref().unwrap().module.as_deref(), Some("first"));
        assert_eq!(hits[0].length, Some(needle.len()));
    }

    #[test]
    fn a_scope_with_nothing_readable_matches_nothing_and_limits_hold() {
        let mut mem = Pages { base: 0, bytes: vec![0x41; 4 * PAGE], hole: 0 };
        let rules = rules(r#"rule always { condition: true } rule a { strings: $a = "AAAA" condition: $a }"#);
        let mut hits = Vec::new();
        // Only the unreadable page.
        scan_scope(&mut [&mut mem], &scope(vec![(0, PAGE as u64)]), &rules, 10, &mut |_| true, &mut hits).unwrap();
        assert!(hits.is_empty());
        scan_scope(
            &mut [&mut mem.clone(), &mut mem],
            &scope(vec![(0, 4 * PAGE as u64)]),
            &rules,
            10,
            &mut |_| true,
            &mut hits,
        )
        .unwrap();
        assert_eq!(hits.len(), 10);
    }

    #[test]
    fn rule_errors_name_the_file_and_line_on_one_line() {
        let dir = std::env::temp_dir().join(format!("memflow-yara-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.yar");
        std::fs::write(&path, "rule ok { condition: true }\nrule bad { condition: $missing }\n").unwrap();
        let failure = compile(&path).err().unwrap();
        assert_eq!(failure.code, crate::EXIT_USAGE);
        assert!(failure.message.contains("bad.yar:2") && !failure.message.contains('\n'), "{}", failure.message);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
