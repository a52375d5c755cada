//! Byte counts on the command line (`4096`, `4k`, `64K`, `1m`, `1MiB`, `2g`)
//! and in tables, and durations on the command line (`10s`, `500ms`, `1.5s`).

use std::time::Duration;

/// Parses a byte count with an optional binary suffix: k/K/KiB = 1024,
/// m/M/MiB = 1024², g/G/GiB = 1024³. `B` alone is accepted (`512B`).
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!(
            "`{s}` is not a byte count: give a number with an optional suffix k, m or g (e.g. 64k)"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is too large a byte count"))?;
    let mult: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "`{s}` has an unknown suffix `{suffix}`: use k, m or g (binary: 1k = 1024)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large a byte count"))
}

/// [`parse_bytes`] for clap, as a `usize`.
pub(crate) fn parse_usize(s: &str) -> Result<usize, String> {
    let v = parse_bytes(s)?;
    usize::try_from(v).map_err(|_| format!("`{s}` is too large"))
}

/// Parses a duration: a number (decimals allowed) with a unit `ms`, `s`,
/// `m` or `h` (`us` too); a bare number is seconds. Zero is refused: a run
/// of no time moves nothing.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let v: f64 = num.parse().map_err(|_| {
        format!(
            "`{s}` is not a duration: give seconds (10, 1.5) or a number with a unit us, ms, s, m or h (10s, 500ms)"
        )
    })?;
    let secs_per: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "`{s}` has an unknown unit `{unit}`: use us, ms, s, m or h, or none for seconds (10s, 500ms, 10)"
            ))
        }
    };
    let d = Duration::try_from_secs_f64(v * secs_per)
        .map_err(|_| format!("`{s}` is too long a duration"))?;
    if d.is_zero() {
        return Err(format!("`{s}`: a runtime must be more than zero"));
    }
    Ok(d)
}

/// A size for tables: `4 KiB`, `1 MiB`, `1.25 MiB`, `512 B`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let v = bytes as f64 / size as f64;
            return if bytes % size == 0 {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{v:.2} {unit}")
            };
        }
    }
    format!("{bytes} B")
}

/// A rate for tables: `52.6k`, `1.23M`, `812`.
pub(crate) fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("1m"), Ok(1 << 20));
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert_eq!(parse_bytes("512B"), Ok(512));
        assert!(parse_bytes("k").unwrap_err().contains("not a byte count"));
        assert!(parse_bytes("4x").unwrap_err().contains("unknown suffix"));
        assert!(parse_bytes("-4k").is_err());
        assert!(parse_bytes("99999999999999999999g").is_err());
        assert!(parse_bytes("17179869184g")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("0s").unwrap_err().contains("more than zero"));
        assert!(parse_duration("ten")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1e300h").is_err());
    }

    #[test]
    fn sizes_and_rates_print_short() {
        assert_eq!(human(4096), "4 KiB");
        assert_eq!(human(1 << 20), "1 MiB");
        assert_eq!(human(1_310_720), "1.25 MiB");
        assert_eq!(human(512), "512 B");
        assert_eq!(rate(52_600.0), "52.6k");
        assert_eq!(rate(1_234_000.0), "1.23M");
        assert_eq!(rate(812.4), "812");
        assert_eq!(rate(7.25), "7.2");
    }
}
