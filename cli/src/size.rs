//! Human sizes: `4096`, `512K`, `256M`, `1G`, `1GiB`, `2T` (binary units).

/// Largest size accepted (16 EiB would overflow; 1 PiB is plenty for a volume).
pub const SIZE_MAX_BYTES: u64 = 1 << 50;

/// Parses a size with an optional binary suffix (K, M, G, T, with optional "iB"/"B").
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!("{s:?} is not a size (e.g. 4096, 512K, 256M, 1G)"));
    }
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is too large"))?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        "t" | "tib" | "tb" => 40,
        _ => return Err(format!("{s:?}: unknown unit {suffix:?} (use K, M, G or T)")),
    };
    let v = n
        .checked_mul(1u64 << shift)
        .filter(|v| *v <= SIZE_MAX_BYTES)
        .ok_or_else(|| format!("{s:?} is larger than {SIZE_MAX_BYTES} bytes"))?;
    Ok(v)
}

/// Formats bytes as the largest exact binary unit, for messages.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes >= (1 << shift) && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("2048T").is_err());
        assert_eq!(format_size(1 << 30), "1G");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(1000), "1000");
    }
}
