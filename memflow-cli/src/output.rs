//! What commands print: a table by default, one JSON document with `--json`; progress bars on
//! standard error. Colors only when standard output is a terminal and `NO_COLOR` is unset.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::Failure;

/// A record that prints as one table row.
pub trait Row {
    /// The column titles.
    const HEADERS: &'static [&'static str];
    /// The row's cells, one per column.
    fn cells(&self) -> Vec<String>;
}

/// How this run prints.
pub struct Output {
    json: bool,
    color: bool,
    quiet: bool,
}

impl Output {
    /// Tables or JSON (`json`); `quiet` hides progress bars.
    pub fn new(json: bool, quiet: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output { json, color: std::io::stdout().is_terminal() && !no_color, quiet }
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Prints `rows` as a table, or as a JSON array of objects.
    pub fn list<R: Row + Serialize>(&self, rows: &[R]) -> Result<(), Failure> {
        if self.json {
            return self.document(&rows);
        }
        self.table(R::HEADERS, rows.iter().map(Row::cells))
    }

    /// Prints `doc` as one JSON document.
    pub fn document<T: Serialize + ?Sized>(&self, doc: &T) -> Result<(), Failure> {
        let text = serde_json::to_string_pretty(doc).map_err(|e| Failure::error(format!("cannot encode JSON: {e}")))?;
        print(&format!("{text}\n"))
    }

    /// Prints a table with aligned columns; the last column is not padded.
    pub fn table(&self, headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Result<(), Failure> {
        let rows: Vec<Vec<String>> = rows.collect();
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.zip(&widths).enumerate() {
                if i + 1 == widths.len() {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<w$}  "));
                }
            }
            out.trim_end().to_string()
        };
        let mut text = line(&mut headers.iter().copied());
        if self.color {
            text = format!("\x1b[1m{text}\x1b[0m");
        }
        text.push('\n');
        for row in &rows {
            text.push_str(&line(&mut row.iter().map(String::as_str)));
            text.push('\n');
        }
        print(&text)
    }

    /// Prints `title` and then `key: value` lines.
    pub fn section(&self, title: &str, pairs: &[(&str, String)]) -> Result<(), Failure> {
        let title = if self.color { format!("\x1b[1m{title}\x1b[0m") } else { title.to_string() };
        let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut text = format!("{title}\n");
        for (key, value) in pairs {
            text.push_str(&format!("  {key:<width$}  {value}\n"));
        }
        print(&text)
    }

    /// A progress bar over `total` bytes on standard error; hidden with `-q`, with `--json`
    /// and when standard error is not a terminal.
    pub fn progress(&self, total: u64, what: &str) -> ProgressBar {
        if self.quiet || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what.to_string());
        bar
    }
}

/// Writes `text` to standard output.
pub fn print(text: &str) -> Result<(), Failure> {
    write_stdout(text.as_bytes())
}

/// Writes `bytes` to standard output as they are.
pub fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush()).map_err(Failure::from)
}

/// `0x...`: how addresses print, in tables and in JSON (as strings: JSON numbers lose
/// precision above 2^53 in many readers).
pub fn hex(value: u64) -> String {
    format!("{value:#x}")
}
