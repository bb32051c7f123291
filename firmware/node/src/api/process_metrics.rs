//! The standard `process_*` metrics (the names every Prometheus client
//! library exports), read from `/proc/self` at scrape time: a few small
//! reads instead of a process-metrics crate.

use std::fs;

use super::metrics::{Kind, Num, write_family};

/// Clock ticks per second in `/proc/<pid>/stat`: the kernel's `USER_HZ`,
/// 100 on every Linux architecture (`sysconf(_SC_CLK_TCK)` is a constant
/// 100 in musl too), so ticks are hundredths of a second.
const USER_HZ: u64 = 100;

/// Appends `process_start_time_seconds`, `process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
/// `process_open_fds` and `process_max_fds`. A value `/proc` does not give
/// leaves its family without a sample rather than failing the scrape.
pub fn write(out: &mut String) {
    let stat = fs::read_to_string("/proc/self/stat").ok();
    let fields = stat.as_deref().map(stat_fields).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // Fields after the command name, counted from 0 at `state` (field 3
    // in proc(5)): utime is field 14, stime 15, starttime 22.
    let cpu = ticks(11)
        .zip(ticks(12))
        .map(|(u, s)| Num::Hundredths(u + s));
    let start = ticks(19)
        .zip(boot_time())
        .map(|(t, b)| Num::Hundredths(b * USER_HZ + t));
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status_kib(&status, "VmRSS:").map(|k| Num::Int(k * 1024));
    let vsize = status_kib(&status, "VmSize:").map(|k| Num::Int(k * 1024));
    let fds = fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| Num::Int(d.count() as u64));
    let max_fds = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| max_open_files(&l))
        .map(Num::Int);
    let one = |v: Option<Num>| v.map(|v| vec![(vec![], v)]).unwrap_or_default();
    write_family(
        out,
        "process_start_time_seconds",
        Kind::Gauge,
        "Start time of the process since the Unix epoch, in seconds",
        &one(start),
    );
    write_family(
        out,
        "process_cpu_seconds_total",
        Kind::Counter,
        "User and system CPU time spent, in seconds",
        &one(cpu),
    );
    write_family(
        out,
        "process_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory size in bytes",
        &one(rss),
    );
    write_family(
        out,
        "process_virtual_memory_bytes",
        Kind::Gauge,
        "Virtual memory size in bytes",
        &one(vsize),
    );
    write_family(
        out,
        "process_open_fds",
        Kind::Gauge,
        "Open file descriptors",
        &one(fds),
    );
    write_family(
        out,
        "process_max_fds",
        Kind::Gauge,
        "Limit on open file descriptors",
        &one(max_fds),
    );
}

/// The fields of `/proc/self/stat` after `(comm)`: the command name may
/// hold spaces and parentheses, so split after its last `)`.
fn stat_fields(stat: &str) -> Vec<&str> {
    match stat.rfind(')') {
        Some(i) => stat[i + 1..].split_whitespace().collect(),
        None => Vec::new(),
    }
}

/// `btime` of `/proc/stat`: when the system booted, Unix seconds.
fn boot_time() -> Option<u64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `kB` line of `/proc/self/status`, e.g. `VmRSS: 1234 kB`.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1000 0";
        let f = stat_fields(stat);
        assert_eq!(f[0], "S");
        assert_eq!(f[11], "250");
        assert_eq!(f[12], "50");
        assert_eq!(f[19], "1000");
        assert_eq!(
            status_kib("Name:\tx\nVmRSS:\t  1234 kB\n", "VmRSS:"),
            Some(1234)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[test]
    fn this_process_has_every_family_with_a_sample() {
        let mut out = String::new();
        write(&mut out);
        for name in [
            "process_start_time_seconds",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
        ] {
            let sample = out
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no sample of {name} in\n{out}"));
            let value = &sample[name.len() + 1..];
            assert!(!value.trim_start_matches(['0', '.']).is_empty(), "{sample}");
        }
    }
}
