//! Sizes in rule files: `512MiB`, `2GiB`, `64MB`, or a number of bytes.

/// Parses a size in bytes, or says what was expected. Binary units (`KiB`, `MiB`, `GiB`,
/// `TiB`) are powers of 1024, decimal ones (`KB`, `MB`, `GB`, `TB`) powers of 1000; a bare
/// number (or `B`) is bytes. Units are read without regard to case.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let factor: Option<u64> = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => Some(1),
        "kib" => Some(1 << 10),
        "mib" => Some(1 << 20),
        "gib" => Some(1 << 30),
        "tib" => Some(1 << 40),
        "kb" => Some(1_000),
        "mb" => Some(1_000_000),
        "gb" => Some(1_000_000_000),
        "tb" => Some(1_000_000_000_000),
        _ => None,
    };
    let size = number.parse::<u64>().ok().zip(factor).and_then(|(n, f)| n.checked_mul(f));
    size.ok_or_else(|| {
        format!("`{text}` is not a size: expected a whole number with a unit, like 512MiB, 2GiB or 64MB")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1 GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("64mb").unwrap(), 64_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        for bad in ["", "MiB", "1.5GiB", "-1GiB", "2 parsecs", "99999999999TiB"] {
            assert!(parse_size(bad).unwrap_err().contains("expected a whole number with a unit"), "{bad}");
        }
    }
}
