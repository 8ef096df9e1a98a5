//! `cargo xtask bench-report phys|translate [TARGET_DIR]`: the benchmarks' results as markdown
//! tables, from criterion's JSON under `TARGET_DIR/criterion` (default: this repository's
//! `target`): every `new/benchmark.json` with the `new/estimates.json` beside it.
//!
//! Every time is criterion's median of the sample means (on a shared machine it is less
//! swayed than the mean by the odd sample taken while another process had the core), and
//! every ratio is one of those medians against another.
//!
//! - `phys`: the physical-read benchmark (`memflow-core/benches/phys_read.rs`, issue 2): per
//!   read size ours, memcpy and memflow 0.2.4 with throughput, 8-byte reads as `u64` and
//!   through cglue trait objects, 64 separate reads against one batch, and issue 2's targets.
//! - `translate`: the translation benchmark (`memflow-core/benches/translate.rs`, issue 3) and
//!   the C boundary benchmark (`memflow-ffi/benches/c_boundary.rs`, issue 5), whichever has
//!   results: translations per second, the whole kernel-half page walk, virtual reads against
//!   memcpy, reads through the C API against the same reads from Rust, with their targets.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

/// The competitor's name in the benchmark ids.
const PEER: &str = "memflow-0.2.4";

/// One benchmark's result.
struct Measurement {
    /// Criterion's median time per iteration, in nanoseconds.
    ns: f64,
    /// The bytes one iteration reads, if the benchmark declares a throughput in bytes.
    bytes: Option<u64>,
}

/// The results by (group, benchmark id).
struct Results(HashMap<(String, String), Measurement>);

impl Results {
    fn get(&self, group: &str, id: &str) -> Option<&Measurement> {
        self.0.get(&(group.to_owned(), id.to_owned()))
    }

    fn ns(&self, group: &str, id: &str) -> Option<f64> {
        self.get(group, id).map(|m| m.ns)
    }
}

/// The report `which` (`phys` or `translate`) of the results under `target_dir`.
pub fn report(which: &str, target_dir: &Path) -> Result<String, String> {
    let results = load(target_dir)?;
    match which {
        "phys" => Ok(phys_report(&results)),
        "translate" => translate_report(&results),
        _ => Err(format!("unknown report {which:?}: phys or translate")),
    }
}

fn load(target_dir: &Path) -> Result<Results, String> {
    let root = target_dir.join("criterion");
    if !root.is_dir() {
        return Err(format!(
            "no criterion results under {}; run the benchmarks first (see BENCHMARKS.md)",
            root.display()
        ));
    }
    let mut results = HashMap::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            }
        }
        let (bench_file, estimates_file) = (dir.join("benchmark.json"), dir.join("estimates.json"));
        if dir.file_name().is_some_and(|n| n == "new") && bench_file.is_file() && estimates_file.is_file() {
            let read = |path: &Path| -> Result<Value, String> {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
            };
            let (bench, estimates) = (read(&bench_file)?, read(&estimates_file)?);
            let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
            let group = text(&bench["group_id"]).ok_or_else(|| format!("{}: no group_id", bench_file.display()))?;
            let id = text(&bench["value_str"]).or_else(|| text(&bench["function_id"])).unwrap_or_default();
            let ns = estimates["median"]["point_estimate"]
                .as_f64()
                .ok_or_else(|| format!("{}: no median", estimates_file.display()))?;
            let throughput = &bench["throughput"];
            let bytes = throughput["Bytes"].as_u64().or_else(|| throughput["BytesDecimal"].as_u64()).filter(|&b| b > 0);
            results.insert((group, id), Measurement { ns, bytes });
        }
    }
    Ok(Results(results))
}

/// `x` with `precision` significant digits, as C's and Python's `%g` write it: plain
/// notation for exponents from -4 to `precision - 1`, otherwise `1.5e+03`; trailing zeros
/// removed.
fn general(x: f64, precision: usize) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let scientific = format!("{:.*e}", precision - 1, x);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip_zeros(mantissa), exponent.abs())
    } else {
        strip_zeros(&format!("{:.*}", (precision as i32 - 1 - exponent) as usize, x)).to_owned()
    }
}

fn strip_zeros(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

fn percent(ratio: f64) -> String {
    format!("{:.0}%", ratio * 100.0)
}

fn time(ns: f64) -> String {
    for (unit, scale) in [("s", 1e9), ("ms", 1e6), ("µs", 1e3)] {
        if ns >= scale {
            return format!("{} {unit}", general(ns / scale, 3));
        }
    }
    format!("{} ns", general(ns, 3))
}

/// Bytes per second with a binary unit.
fn rate(bytes: u64, ns: f64) -> String {
    let per_second = bytes as f64 / (ns * 1e-9);
    for (unit, scale) in [("GiB/s", (1u64 << 30) as f64), ("MiB/s", (1u64 << 20) as f64), ("KiB/s", 1024.0)] {
        if per_second >= scale {
            return format!("{} {unit}", general(per_second / scale, 3));
        }
    }
    format!("{} B/s", general(per_second, 3))
}

fn gib_per_second(bytes: u64, ns: f64) -> String {
    format!("{:.1} GiB/s", bytes as f64 / ns * 1e9 / (1u64 << 30) as f64)
}

// ------------------------------------------------------------------------------ phys

/// 64 KiB and larger reads: ours at least this share of memcpy's throughput.
const MEMCPY_TARGET: f64 = 0.90;
/// 8-byte reads: ours at least this many times faster per call than memflow 0.2.4.
const PEER_TARGET: f64 = 1.5;

/// A time with its throughput, `–` if there is no result.
fn cell(m: Option<&Measurement>) -> String {
    match m {
        None => "–".into(),
        Some(Measurement { ns, bytes: Some(bytes) }) => format!("{} ({})", time(*ns), rate(*bytes, *ns)),
        Some(Measurement { ns, bytes: None }) => time(*ns),
    }
}

/// `a / b` as `1.23x`, `–` unless both exist.
fn times(a: Option<&Measurement>, b: Option<&Measurement>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}x", a.ns / b.ns),
        _ => "–".into(),
    }
}

fn phys_report(r: &Results) -> String {
    let mut out = String::new();
    let mut verdicts = Vec::new(); // (what, met, value)
    out += "Time per read, criterion's median (throughput); ratios from the same medians.\n\n";
    out += "| size | ours | memcpy | memflow 0.2.4 | ours / memcpy throughput | ours vs memflow 0.2.4 |\n";
    out += "|---|---|---|---|---|---|\n";
    for (size, label) in [("8B", "8 B"), ("4KiB", "4 KiB"), ("64KiB", "64 KiB"), ("1MiB", "1 MiB")] {
        let group = format!("phys_read/{size}");
        let (ours, memcpy, peer) = (r.get(&group, "ours"), r.get(&group, "memcpy"), r.get(&group, PEER));
        if ours.is_none() && memcpy.is_none() && peer.is_none() {
            continue;
        }
        let share = match (ours, memcpy) {
            (Some(o), Some(m)) => percent(m.ns / o.ns),
            _ => "–".into(),
        };
        out += &format!(
            "| {label} | {} | {} | {} | {share} | {} |\n",
            cell(ours),
            cell(memcpy),
            cell(peer),
            times(peer, ours)
        );
        if let (Some(o), Some(m), "64KiB" | "1MiB") = (ours, memcpy, size) {
            let ratio = m.ns / o.ns;
            let what = format!("{label}: ours >= {} of memcpy", percent(MEMCPY_TARGET));
            verdicts.push((what, ratio >= MEMCPY_TARGET, percent(ratio)));
        }
        if let (Some(o), Some(p), "8B") = (ours, peer, size) {
            let ratio = p.ns / o.ns;
            verdicts.push((
                format!("8 B: ours >= {PEER_TARGET}x memflow 0.2.4 per call"),
                ratio >= PEER_TARGET,
                times(peer, ours),
            ));
        }
    }

    // Typed 8-byte reads: phys_read::<u64> against the peer's phys_read_into(&mut u64).
    let (ours, peer) = (r.get("phys_read/8B", "ours-read-u64"), r.get("phys_read/8B", "memflow-0.2.4-u64"));
    if ours.is_some() || peer.is_some() {
        out += &format!("| 8 B as `u64` | {} | | {} | | {} |\n", cell(ours), cell(peer), times(peer, ours));
        if let (Some(o), Some(p)) = (ours, peer) {
            let what = format!("8 B as u64: ours >= {PEER_TARGET}x memflow 0.2.4 per call");
            verdicts.push((what, p.ns / o.ns >= PEER_TARGET, times(peer, ours)));
        }
    }
    // 8-byte reads through cglue trait objects (plugins, the C API).
    let (ours, peer) = (r.get("phys_read/8B", "ours-dyn"), r.get("phys_read/8B", "memflow-0.2.4-dyn"));
    if ours.is_some() || peer.is_some() {
        out += &format!("| 8 B via trait object | {} | | {} | | {} |\n", cell(ours), cell(peer), times(peer, ours));
    }

    let group = "phys_read_batch/64x8B";
    let paths = [
        ("ours", "ours-64-calls", Some("ours-batch")),
        ("ours via trait object", "ours-dyn-64-calls", Some("ours-dyn-batch")),
        ("memflow 0.2.4", "memflow-0.2.4-64-calls", Some("memflow-0.2.4-batch")),
        ("memcpy", "memcpy-64", None),
    ];
    let rows: Vec<_> = paths
        .iter()
        .map(|&(label, calls, batch)| (label, r.get(group, calls), batch.map(|b| r.get(group, b))))
        .collect();
    if rows.iter().any(|(_, calls, batch)| calls.is_some() || batch.flatten().is_some()) {
        out += "\n64 reads of 8 B at random offsets: 64 separate calls against one batch (time per read).\n\n";
        out += "| path | 64 calls | one batch of 64 | batch speedup |\n";
        out += "|---|---|---|---|\n";
        let per_read = |m: Option<&Measurement>| m.map_or("–".into(), |m| time(m.ns / 64.0));
        for (label, calls, batch) in rows {
            let speedup = match (calls, batch.flatten()) {
                (Some(c), Some(b)) => format!("{:.2}x", c.ns / b.ns),
                _ => String::new(),
            };
            let batch = batch.map_or(String::new(), per_read);
            out += &format!("| {label} | {} | {batch} | {speedup} |\n", per_read(calls));
        }
    }

    if !verdicts.is_empty() {
        out += "\nTargets (issue 2):\n\n";
        for (what, met, value) in verdicts {
            out += &format!("- {what}: {value}, {}\n", if met { "met" } else { "MISSED" });
        }
    }
    out
}

// ------------------------------------------------------------------------- translate

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

fn translate_report(r: &Results) -> Result<String, String> {
    let (translation, c_boundary) = (translate_tables(r), c_boundary_table(r));
    if translation.is_empty() && c_boundary.is_empty() {
        return Err("no results of the translate or c_boundary benchmarks found".into());
    }
    let mut out = String::new();
    if !translation.is_empty() {
        out += &format!("### Address translation (issue 3)\n\n{translation}");
    }
    if !c_boundary.is_empty() {
        out += &format!("### The C boundary (issue 5)\n\n{c_boundary}");
    }
    Ok(out)
}

/// Translations per second, the whole page walk, virtual reads: each table followed by an
/// empty line.
fn translate_tables(r: &Results) -> String {
    let mut out = String::new();
    let mut rows = String::new();
    for batch in [1u32, 64, 4096] {
        let group = format!("translate/batch{batch}");
        let (Some(ours), Some(peer)) = (r.ns(&group, "ours"), r.ns(&group, PEER)) else { continue };
        let per_second = |ns: f64| f64::from(batch) / ns * 1e3; // millions per second
        let ratio = per_second(ours) / per_second(peer);
        let target = if batch >= 64 { format!("≥ 3x: {}", verdict(ratio >= 3.0)) } else { "(none)".into() };
        rows += &format!(
            "| {batch} | {:.1} M/s ({} each) | {:.1} M/s ({} each) | {ratio:.1}x | {target} |\n",
            per_second(ours),
            time(ours / f64::from(batch)),
            per_second(peer),
            time(peer / f64::from(batch))
        );
    }
    if !rows.is_empty() {
        out += "| batch | ours | memflow 0.2.4 | ours / memflow | target |\n|---:|---:|---:|---:|---|\n";
        out += &rows;
        out += "\n";
    }

    if let (Some(ours), Some(peer)) = (r.ns("translate_walk", "ours"), r.ns("translate_walk", PEER)) {
        let ratio = peer / ours;
        out += "| whole kernel-half page walk | ours | memflow 0.2.4 | memflow / ours | target |\n|---|---:|---:|---:|---|\n";
        out += &format!(
            "| `virt_page_map_range` | {} | {} | {ratio:.1}x faster | ≥ 5x: {} |\n\n",
            time(ours),
            time(peer),
            verdict(ratio >= 5.0)
        );
    }

    let mut rows = String::new();
    for (size, label, bytes, need) in
        [("4KiB", "4 KiB", 4u64 << 10, 0.70), ("64KiB", "64 KiB", 64 << 10, 0.85), ("1MiB", "1 MiB", 1 << 20, 0.85)]
    {
        let group = format!("virt_read/{size}");
        let t = |id: &str| r.ns(&group, id);
        let (Some(ours), Some(tlb), Some(peer), Some(phys), Some(memcpy)) =
            (t("ours"), t("ours-tlb"), t(PEER), t("ours-phys"), t("memcpy"))
        else {
            continue;
        };
        let share = memcpy / ours;
        rows += &format!(
            "| {label} | {} ({}) | {} | {} ({}) | {} | {} ({}) | {} | {} | {} | ≥ {}: {} |\n",
            time(ours),
            gib_per_second(bytes, ours),
            time(tlb),
            time(peer),
            gib_per_second(bytes, peer),
            time(phys),
            time(memcpy),
            gib_per_second(bytes, memcpy),
            percent(share),
            percent(memcpy / tlb),
            percent(memcpy / peer),
            percent(need),
            verdict(share >= need)
        );
    }
    if !rows.is_empty() {
        out += "| virtual read | ours | ours + TLB | memflow 0.2.4 | our connector, physical pieces only | memcpy | \
                ours / memcpy | ours + TLB / memcpy | memflow / memcpy | target (ours) |\n";
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
        out += &rows;
        out += "\n";
    }
    out
}

/// Reads through the C API against the same reads from Rust, followed by an empty line.
fn c_boundary_table(r: &Results) -> String {
    let mut rows = String::new();
    for (size, label) in [("8B", "8 B"), ("4KiB", "4 KiB")] {
        let group = format!("c_boundary/{size}");
        let t = |id: &str| r.ns(&group, id);
        let (Some(c), Some(c_so), Some(rust), Some(concrete)) =
            (t("c-api"), t("c-api-so"), t("rust"), t("rust-concrete"))
        else {
            continue;
        };
        let (ratio, ratio_so) = (c / rust, c_so / rust);
        rows += &format!(
            "| {label} | {} | {} | {} | {} | {ratio:.2}x | {ratio_so:.2}x | ≤ 1.2x: {} |\n",
            time(c),
            time(c_so),
            time(rust),
            time(concrete),
            verdict(ratio.max(ratio_so) <= 1.2)
        );
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "| read | C API (rlib) | C API (`libmemflow_ffi.so`) | Rust, same instance type | Rust, concrete `FileConnector` | \
         C / Rust | C (.so) / Rust | target |\n|---|---:|---:|---:|---:|---:|---:|---|\n{rows}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `%.3g` as C and Python write it.
    #[test]
    fn general_format() {
        let cases = [
            (146.0, "146"),
            (26.0, "26"),
            (2.56, "2.56"),
            (2.5, "2.5"),
            (0.000123, "0.000123"),
            (0.0000123, "1.23e-05"),
            (999.7, "1e+03"),
            (1234.0, "1.23e+03"),
            (19.94, "19.9"),
            (0.0, "0"),
        ];
        for (x, text) in cases {
            assert_eq!(general(x, 3), text, "{x}");
        }
        assert_eq!(time(46_300.0), "46.3 µs");
        assert_eq!(rate(8, 2.56), "2.91 GiB/s");
    }
}
