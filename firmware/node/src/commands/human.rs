//! Numbers for people: durations like `wg show` ("1m 12s"), byte counts
//! in binary units, Unix times as RFC 3339 with how long ago.

/// `1d 2h`, `3h 5m`, `1m 12s`, `7s`: the two largest units (the CLI's
/// one duration format, [`super::output::short_duration`]).
pub fn duration(secs: u64) -> String {
    super::output::short_duration(secs)
}

/// `1m 12s ago`.
pub fn ago(secs: u64) -> String {
    format!("{} ago", duration(secs))
}

/// `512 B`, `1.50 KiB`, `3.20 MiB`, … as `wg show` counts transfer (in
/// integers: no float formatting in the binary).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut unit = 0;
    let mut size: u128 = 1024;
    while u128::from(n) >= size * 1024 && unit + 1 < UNITS.len() {
        size *= 1024;
        unit += 1;
    }
    let hundredths = (u128::from(n) * 100 + size / 2) / size;
    format!(
        "{}.{:02} {}",
        hundredths / 100,
        hundredths % 100,
        UNITS[unit]
    )
}

/// `2026-11-30T03:12:00Z (5m 3s ago)`; a time ahead of this clock
/// says so instead of a negative age.
pub fn when(unix: u64, now_unix: u64) -> String {
    let stamp = super::output::rfc3339(unix);
    match now_unix.checked_sub(unix) {
        Some(age) => format!("{stamp} ({})", ago(age)),
        None => format!("{stamp} (ahead of this clock)"),
    }
}

/// Left-aligned columns under a header, two spaces apart (the last column
/// is not padded).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_wg_show() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(7), "7s");
        assert_eq!(duration(72), "1m 12s");
        assert_eq!(duration(120), "2m");
        assert_eq!(duration(3_600 + 5 * 60 + 9), "1h 5m");
        assert_eq!(duration(2 * 86_400 + 3 * 3_600), "2d 3h");
        assert_eq!(ago(72), "1m 12s ago");
    }

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.00 MiB");
    }

    #[test]
    fn times_and_tables() {
        assert_eq!(when(60, 132), "1970-01-01T00:01:00Z (1m 12s ago)");
        assert_eq!(when(200, 100), "1970-01-01T00:03:20Z (ahead of this clock)");
        let t = table(
            &["NAME", "IP", "RX"],
            &[vec!["hub".into(), "10.0.0.1".into(), "1 B".into()]],
        );
        assert_eq!(t, "NAME  IP        RX\nhub   10.0.0.1  1 B");
    }
}
