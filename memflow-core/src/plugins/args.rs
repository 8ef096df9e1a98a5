//! Plugin arguments and chains, as users type them.
//!
//! One link is `name[:args]`; args are comma-separated `key=value` pairs, and one element
//! without `=` is the default (positional) argument, usually the target:
//!
//! ```text
//! coredump:/dumps/guest.elf,cache=true,cache_size=4M
//! qemu:name=win10,map='0x0-0x9ffff, 0x100000-0x7fffffff'
//! ```
//!
//! A chain joins links with `->`, bytes flowing left to right:
//! `native -> qemu:vm1 -> linux`. Values may be quoted with `'` or `"` to contain `,`, `=`,
//! `->` or spaces; inside double quotes `\"` and `\\` are escapes.

use std::collections::HashSet;

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// The longest argument string or chain accepted, in bytes (a path is at most 4 KiB).
pub const ARGS_TEXT_MAX: usize = 64 << 10;
/// The most `key=value` arguments one plugin takes.
pub const ARGS_MAX: usize = 256;
/// The most links in one chain.
pub const CHAIN_LINKS_MAX: usize = 16;

/// Parsed arguments of one plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    default: Option<String>,
    pairs: Vec<(String, String)>,
}

impl Args {
    /// Parses `target,key=value,...`. Fails on unbalanced quotes, empty keys, a key given
    /// twice, more than one positional value, more than [`ARGS_MAX`] arguments or more than
    /// [`ARGS_TEXT_MAX`] bytes.
    pub fn parse(text: &str) -> Result<Args> {
        check_length(text, "argument string")?;
        let mut args = Args::default();
        let mut keys = HashSet::new();
        for element in split_unquoted(text, ",")? {
            let element = element.trim();
            if element.is_empty() {
                continue;
            }
            match find_unquoted(element, "=") {
                Some(eq) => {
                    let key = element[..eq].trim();
                    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument)
                            .with_reason(format_args!("bad argument name `{key}`")));
                    }
                    if !keys.insert(key) {
                        return Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument)
                            .with_reason(format_args!("argument `{key}` given twice")));
                    }
                    if keys.len() > ARGS_MAX {
                        return Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument)
                            .with_reason(format_args!("more than {ARGS_MAX} arguments (ARGS_MAX)")));
                    }
                    args.pairs.push((key.to_string(), unquote(element[eq + 1..].trim())?));
                }
                None if args.default.is_none() => args.default = Some(unquote(element)?),
                None => {
                    return Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).with_reason(format_args!(
                        "second positional argument `{element}` (only one is allowed; use key=value)"
                    )))
                }
            }
        }
        Ok(args)
    }

    /// The positional argument, if given.
    pub fn default_value(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The positional argument, or else the value of `key` (e.g. `target`).
    pub fn target_or(&self, key: &str) -> Option<&str> {
        self.default_value().or_else(|| self.get(key))
    }

    /// The given `key=value` pairs, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Fails, naming them, if any keys are not in `known`.
    pub fn check_known(&self, known: &[&str]) -> Result<()> {
        let unknown: Vec<&str> = self.pairs().map(|(k, _)| k).filter(|k| !known.contains(k)).collect();
        let reason = match (unknown.as_slice(), known) {
            ([], _) => return Ok(()),
            (_, []) => format!("takes no arguments, got `{}`", unknown.join("`, `")),
            _ => format!("unknown argument(s) `{}`; known: {}", unknown.join("`, `"), known.join(", ")),
        };
        Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).with_reason(reason))
    }

    /// Fails, naming the plugin, if a positional argument was given to a plugin that takes none.
    pub fn check_no_target(&self, plugin: &str) -> Result<()> {
        match self.default_value() {
            Some(extra) => Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument)
                .with_reason(format_args!("`{plugin}` takes no target, got `{extra}`"))),
            None => Ok(()),
        }
    }

    /// The boolean `key` (see [`parse_flag`]); absent is `false`.
    pub fn flag(&self, key: &str) -> Result<bool> {
        self.get(key).map_or(Ok(false), |v| parse_flag(key, v))
    }

    /// The number `key`; absent is `default`.
    pub fn number<T: core::str::FromStr>(&self, key: &str, default: T) -> Result<T> {
        self.get(key).map_or(Ok(default), |v| parse_number(key, v))
    }

    /// Removes and returns `key`'s value (used to take generic options such as middleware
    /// settings before handing the rest to a plugin).
    pub fn take(&mut self, key: &str) -> Option<String> {
        let idx = self.pairs.iter().position(|(k, _)| k == key)?;
        Some(self.pairs.remove(idx).1)
    }

    /// Adds or replaces a `key=value` pair.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value.to_string(),
            None => self.pairs.push((key.to_string(), value.to_string())),
        }
    }
}

/// Writes the arguments back as text that [`Args::parse`] reads as the same arguments.
impl core::fmt::Display for Args {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut core::fmt::Formatter<'_>| {
            let s = if first { "" } else { "," };
            first = false;
            f.write_str(s)
        };
        if let Some(d) = &self.default {
            sep(f)?;
            write_quoted(f, d)?;
        }
        for (k, v) in &self.pairs {
            sep(f)?;
            write!(f, "{k}=")?;
            write_quoted(f, v)?;
        }
        Ok(())
    }
}

/// Writes `value`, in double quotes with escapes if it holds anything the parser splits on.
fn write_quoted(f: &mut core::fmt::Formatter<'_>, value: &str) -> core::fmt::Result {
    let plain = !value.is_empty()
        && !value.contains(|c: char| matches!(c, ',' | '=' | '\'' | '"' | '\\') || c.is_whitespace())
        && !value.contains("->");
    if plain {
        return f.write_str(value);
    }
    f.write_str("\"")?;
    for c in value.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

/// Parses the value of a boolean argument: `1`/`true`/`yes`/`on` or empty (`key=`) for true,
/// `0`/`false`/`no`/`off` for false.
pub fn parse_flag(key: &str, value: &str) -> Result<bool> {
    match value {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(bad_value(key, value, "a boolean")),
    }
}

/// Parses the value of a numeric argument.
pub fn parse_number<T: core::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value.parse().map_err(|_| bad_value(key, value, "a number"))
}

/// The error for `key=value` that is not what `expected` describes.
pub fn bad_value(key: &str, value: &str, expected: &str) -> Error {
    Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument)
        .with_reason(format_args!("`{key}={value}`: expected {expected}"))
}

/// One link of a chain: a plugin name and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLink {
    /// The plugin name.
    pub name: String,
    /// Its arguments.
    pub args: Args,
}

impl ChainLink {
    /// Parses `name[:args]`.
    pub fn parse(text: &str) -> Result<ChainLink> {
        let text = text.trim();
        let (name, rest) = match text.find(':') {
            Some(colon) => (&text[..colon], &text[colon + 1..]),
            None => (text, ""),
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument)
                .with_reason(format_args!("bad plugin name `{name}` in `{text}`")));
        }
        Ok(ChainLink { name: name.to_string(), args: Args::parse(rest)? })
    }
}

/// Parses a chain `link -> link -> ...`. Fails on an empty chain or link, more than
/// [`CHAIN_LINKS_MAX`] links or more than [`ARGS_TEXT_MAX`] bytes.
pub fn parse_chain(text: &str) -> Result<Vec<ChainLink>> {
    check_length(text, "chain")?;
    let links = split_unquoted(text, "->")?;
    if links.iter().any(|l| l.trim().is_empty()) {
        return Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument)
            .with_reason(format_args!("empty link in chain `{text}`")));
    }
    if links.len() > CHAIN_LINKS_MAX {
        return Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).with_reason(format_args!(
            "the chain has {} links; at most {CHAIN_LINKS_MAX} are accepted (CHAIN_LINKS_MAX)",
            links.len()
        )));
    }
    links.into_iter().map(ChainLink::parse).collect()
}

/// Refuses `text` (a `what`) longer than [`ARGS_TEXT_MAX`] before any parsing.
fn check_length(text: &str, what: &str) -> Result<()> {
    if text.len() <= ARGS_TEXT_MAX {
        return Ok(());
    }
    Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).with_reason(format_args!(
        "the {what} is {} bytes long; at most {ARGS_TEXT_MAX} are accepted (ARGS_TEXT_MAX)",
        text.len()
    )))
}

/// Splits at every `sep` that is not inside quotes.
fn split_unquoted<'a>(text: &'a str, sep: &str) -> Result<Vec<&'a str>> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(at) = find_unquoted(rest, sep) {
        parts.push(&rest[..at]);
        rest = &rest[at + sep.len()..];
    }
    check_balanced(rest)?;
    parts.push(rest);
    Ok(parts)
}

/// The byte index of the first `pat` outside quotes.
fn find_unquoted(text: &str, pat: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if text[i..].starts_with(pat) => return Some(i),
            None => {}
        }
    }
    None
}

fn check_balanced(text: &str) -> Result<()> {
    // Appending a NUL that is never inside the text: if it is found, all quotes closed.
    let probe = format!("{text}\0");
    match find_unquoted(&probe, "\0") {
        Some(_) => Ok(()),
        None => Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument)
            .with_reason(format_args!("unbalanced quote in `{text}`"))),
    }
}

/// Removes one level of quotes: `'a,b'` -> `a,b`; `"a\"b"` -> `a"b`. Unquoted text is kept.
fn unquote(text: &str) -> Result<String> {
    check_balanced(text)?;
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some('"') if c == '\\' => out.extend(chars.next()),
            Some(q) if c == q => quote = None,
            Some(_) => out.push(c),
            None if c == '\'' || c == '"' => quote = Some(c),
            None => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_default_and_pairs() {
        let a = Args::parse("/tmp/guest.elf, cache=true ,cache_size=4M").unwrap();
        assert_eq!(a.default_value(), Some("/tmp/guest.elf"));
        assert_eq!(a.get("cache"), Some("true"));
        assert_eq!(a.get("cache_size"), Some("4M"));
        assert_eq!(a.get("delay"), None);
    }

    #[test]
    fn quotes_protect_separators() {
        let a = Args::parse(r#"'/a path/with,comma',map="0-1, 2-3",msg="say \"hi\" -> x""#).unwrap();
        assert_eq!(a.default_value(), Some("/a path/with,comma"));
        assert_eq!(a.get("map"), Some("0-1, 2-3"));
        assert_eq!(a.get("msg"), Some(r#"say "hi" -> x"#));
    }

    #[test]
    fn reports_errors() {
        assert!(Args::parse("a,b").is_err(), "two positionals");
        assert!(Args::parse("k=1,k=2").is_err(), "duplicate key");
        assert!(Args::parse("=1").is_err(), "empty key");
        assert!(Args::parse("'open").is_err(), "unbalanced quote");
        let a = Args::parse("target,bogus=1,cache=1").unwrap();
        assert!(a.check_known(&["cache"]).is_err());
        assert_eq!(
            a.check_known(&["cache"]).unwrap_err().reason().unwrap(),
            "unknown argument(s) `bogus`; known: cache"
        );
        assert_eq!(a.check_known(&[]).unwrap_err().reason().unwrap(), "takes no arguments, got `bogus`, `cache`");
        assert!(a.check_known(&["cache", "bogus"]).is_ok());
    }

    #[test]
    fn parses_chains() {
        let chain = parse_chain("coredump:'/x/a->b.elf',cache=1 -> linux").unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].name, "coredump");
        assert_eq!(chain[0].args.default_value(), Some("/x/a->b.elf"));
        assert_eq!(chain[1].name, "linux");
        assert_eq!(chain[1].args, Args::default());
        let chain = parse_chain("native -> qemu:vm1 -> linux").unwrap();
        assert_eq!(chain.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["native", "qemu", "linux"]);
        assert_eq!(chain[1].args.default_value(), Some("vm1"));
        assert!(parse_chain("native -> -> linux").is_err());
        assert!(parse_chain("").is_err());
        assert!(parse_chain("bad name:x").is_err());
    }

    #[test]
    fn counts_and_lengths_are_capped() {
        let keys = |n: usize| (0..n).map(|i| format!("k{i}=1")).collect::<Vec<_>>().join(",");
        assert_eq!(Args::parse(&keys(ARGS_MAX)).unwrap().pairs().count(), ARGS_MAX);
        assert_eq!(Args::parse(&keys(ARGS_MAX + 1)).unwrap_err().kind, ErrorKind::InvalidArgument);
        // The duplicate is found among many keys, at the end.
        let dup = format!("{},k7=2", keys(ARGS_MAX - 1));
        assert_eq!(Args::parse(&dup).unwrap_err().kind, ErrorKind::InvalidArgument);
        // 100k distinct keys (the quadratic case of the issue): refused by length, unparsed.
        let many = keys(100_000);
        assert!(many.len() > ARGS_TEXT_MAX);
        assert_eq!(Args::parse(&many).unwrap_err().kind, ErrorKind::InvalidArgument);
        assert_eq!(parse_chain(&format!("dummy:{many}")).unwrap_err().kind, ErrorKind::InvalidArgument);
        // Lengths: a long path is fine up to the limit, not beyond.
        let long = "x".repeat(ARGS_TEXT_MAX);
        assert_eq!(Args::parse(&long).unwrap().default_value(), Some(long.as_str()));
        assert_eq!(Args::parse(&format!("{long}x")).unwrap_err().kind, ErrorKind::InvalidArgument);
        // Empty elements cost nothing but are bounded by the length too.
        assert_eq!(Args::parse(&",".repeat(ARGS_TEXT_MAX)).unwrap(), Args::default());
        // Links.
        let chain = |n: usize| vec!["dummy"; n].join(" -> ");
        assert_eq!(parse_chain(&chain(CHAIN_LINKS_MAX)).unwrap().len(), CHAIN_LINKS_MAX);
        assert_eq!(parse_chain(&chain(CHAIN_LINKS_MAX + 1)).unwrap_err().kind, ErrorKind::InvalidArgument);
        assert_eq!(parse_chain(&"->".repeat(ARGS_TEXT_MAX / 2)).unwrap_err().kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn take_and_set() {
        let mut a = Args::parse("t,cache=1,x=2").unwrap();
        assert_eq!(a.take("cache").as_deref(), Some("1"));
        assert_eq!(a.get("cache"), None);
        a.set("x", "3");
        assert_eq!(a.get("x"), Some("3"));
    }

    #[test]
    fn display_roundtrips() {
        for text in ["", "t", "'/a b/c,d',x=1", r#"'q\"x',k="a->b""#, "k=,j=\"\""] {
            let a = Args::parse(text).unwrap();
            assert_eq!(Args::parse(&a.to_string()).unwrap(), a, "{text} -> {a}");
        }
    }

    proptest::proptest! {
        /// Printing and parsing again gives the same arguments.
        #[test]
        fn display_roundtrips_any(default in proptest::option::of(".{1,12}"), vals in proptest::collection::vec(".{0,12}", 0..4)) {
            let mut a = Args { default: default.filter(|d| !d.trim().is_empty() && d.trim() == d), ..Args::default() };
            for (i, v) in vals.iter().enumerate() {
                a.set(&format!("k{i}"), v.trim());
            }
            proptest::prop_assert_eq!(Args::parse(&a.to_string()).unwrap(), a);
        }

        /// Arbitrary input never panics.
        #[test]
        fn never_panics(s in ".{0,64}") {
            let _ = parse_chain(&s);
            let _ = Args::parse(&s);
        }
    }
}
