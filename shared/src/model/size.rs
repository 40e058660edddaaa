//! Byte sizes as people write them: `256MB`, `4kB`, `1GiB`, `1048576`. Units are binary
//! (kB = 1024), as in postgresql.conf.

use crate::error::{Error, Result};

/// Parses a size; `setting` names the flag in the error.
pub fn parse_size(text: &str, setting: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        Error::config(
            setting,
            format!("{text:?} is not a size (use e.g. 256MB, 64kB, 1GB or a number of bytes)"),
        )
    };
    let value: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = (value * mult as f64).round();
    if !(1.0..=1e18).contains(&bytes) {
        return Err(Error::config(
            setting,
            format!("{text:?} must be at least 1 byte"),
        ));
    }
    Ok(bytes as u64)
}

/// Formats bytes for people: `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("256MB", "x").expect("ok"), 256 << 20);
        assert_eq!(parse_size("4kB", "x").expect("ok"), 4096);
        assert_eq!(parse_size("1GiB", "x").expect("ok"), 1 << 30);
        assert_eq!(parse_size("1000", "x").expect("ok"), 1000);
        assert_eq!(parse_size("1.5k", "x").expect("ok"), 1536);
    }

    #[test]
    fn a_bad_size_names_the_flag_and_the_value() {
        let e = parse_size("lots", "--chunk-size").expect_err("bad");
        assert!(e.to_string().contains("--chunk-size") && e.to_string().contains("lots"));
        assert!(parse_size("0", "--chunk-size").is_err());
    }

    #[test]
    fn human_bytes_picks_a_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
