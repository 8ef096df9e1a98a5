//! Size units and parsing of human-written sizes (`64K`, `2MiB`, `1g`).

use super::umem;

/// `n` kibibytes.
pub const fn kb(n: umem) -> umem {
    n << 10
}

/// `n` mebibytes.
pub const fn mb(n: umem) -> umem {
    n << 20
}

/// `n` gibibytes.
pub const fn gb(n: umem) -> umem {
    n << 30
}

/// Parses a size such as `4096`, `0x1000`, `64k`, `2M`, `2MiB`, `1G` (units are powers of 1024).
///
/// Returns `None` for malformed input or a value that does not fit in [`umem`].
pub fn parse(text: &str) -> Option<umem> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return umem::from_str_radix(hex, 16).ok();
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: umem = digits.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    value.checked_mul((1 as umem) << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("4096"), Some(4096));
        assert_eq!(parse("0x1000"), Some(4096));
        assert_eq!(parse("64k"), Some(kb(64)));
        assert_eq!(parse("2MiB"), Some(mb(2)));
        assert_eq!(parse(" 1G "), Some(gb(1)));
        assert_eq!(parse("1q"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("99999999999999999999999999999999999999999999T"), None);
    }
}
