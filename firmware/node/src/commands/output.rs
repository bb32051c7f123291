//! The one output convention of every command (docs/cli.md, "Output"):
//! human text by default, one JSON value with `--json`; tables with a
//! header line; times as RFC 3339 or relative to now, never raw Unix
//! seconds; `-` as a file name means standard output (or input).

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::cli::ExportArgs;

/// `--json`: the value on one line (for `jq` and scripts).
pub fn print_json(v: &Value) {
    println!("{v}");
}

/// `--json`: `v` as JSON; else `human` renders it.
pub fn print(v: &Value, as_json: bool, human: impl FnOnce(&Value)) {
    if as_json {
        print_json(v);
    } else {
        human(v);
    }
}

/// A table printed with a header line and columns padded to their widest
/// cell (the last column is not padded).
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i + 1 < columns {
                    let pad = widths[i] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// `2026-11-30T03:12:00Z`.
pub fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// `in 6d 23h`, `5m ago`, `now`: the two largest units.
pub fn relative(unix: u64, now: u64) -> String {
    if unix == now {
        return "now".into();
    }
    let span = short_duration(unix.abs_diff(now));
    if unix > now {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// `6d 23h`, `5m 2s`, `40s`.
pub fn short_duration(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut left = secs;
    for (size, unit) in UNITS {
        if left >= size || (parts.is_empty() && size == 1) {
            parts.push(format!("{}{unit}", left / size));
            left %= size;
        }
        if parts.len() == 2 || (!parts.is_empty() && left == 0) {
            break;
        }
    }
    parts.join(" ")
}

/// `-` is standard output (and input) wherever a command takes a file.
pub fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Writes `bytes` to `path`, or to standard output for `-` (a binary
/// bundle is refused on a terminal). `private`: the file is created 0600
/// from its first byte (it holds a secret).
pub fn write_output(path: &Path, bytes: &[u8], binary: bool, private: bool) -> anyhow::Result<()> {
    if is_stdio(path) {
        let mut stdout = std::io::stdout();
        if binary && stdout.is_terminal() {
            bail!("refusing to write a binary file to a terminal: use --out FILE");
        }
        stdout.write_all(bytes)?;
        return Ok(stdout.flush()?);
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(true).write(true);
    if private {
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads `path`, or standard input for `-`.
pub fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if is_stdio(path) {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// How an input file argument is named in messages.
pub fn describe(path: &Path) -> String {
    if is_stdio(path) {
        "standard input".into()
    } else {
        path.display().to_string()
    }
}

/// `identity export` and `directory export`: the bundle to `--out` (`-`,
/// the default, is standard output, refused on a terminal); `--json` prints
/// a summary instead (with `--out -`, the bundle as base64 in it).
pub fn export_bundle(
    v: &mut Value,
    bundle: &[u8],
    args: &ExportArgs,
    what: &str,
) -> anyhow::Result<()> {
    let to_stdout = is_stdio(&args.out);
    if !(args.json && to_stdout) {
        write_output(&args.out, bundle, true, false)?;
        if let Some(map) = v.as_object_mut() {
            map.remove("bundle_base64");
        }
    }
    if args.json {
        v["out"] = json!(args.out);
        v["bytes"] = json!(bundle.len());
        print_json(v);
    } else if !to_stdout {
        eprintln!("exported {} {what} to {}", v["entries"], args.out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_use_two_units() {
        assert_eq!(relative(100, 100), "now");
        assert_eq!(relative(100 + 7 * 86_400 - 1, 100), "in 6d 23h");
        assert_eq!(relative(100, 400), "5m ago");
        assert_eq!(relative(100, 102), "2s ago");
        assert_eq!(short_duration(0), "0s");
        assert_eq!(short_duration(3_661), "1h 1m");
        assert_eq!(short_duration(86_400), "1d");
    }

    #[test]
    fn rfc3339_is_utc_seconds() {
        assert_eq!(rfc3339(1_796_582_688), "2026-12-06T18:44:48Z");
    }

    #[test]
    fn tables_have_a_header_and_aligned_columns() {
        let mut t = Table::new(&["ID", "USES", "TAGS"]);
        t.row(vec!["abc".into(), "1/2".into(), "".into()]);
        t.row(vec!["a".into(), "10/20".into(), "lab".into()]);
        assert_eq!(t.render(), "ID   USES   TAGS\nabc  1/2\na    10/20  lab\n");
    }
}
