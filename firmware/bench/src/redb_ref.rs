//! The reference for the enrolment rate: what the disk allows. One hub
//! enrolment is one durable redb write transaction, so N bare durable
//! commits of one small value each, on the same filesystem, bound it from
//! above.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use redb::{Database, TableDefinition};

use crate::{json_str, ms, percentile_ms};

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("bench");
/// The same page cache as the node's state store.
const CACHE_BYTES: usize = 4 << 20;

pub struct Spec {
    pub dir: PathBuf,
    pub count: usize,
    pub value_bytes: usize,
}

pub fn run(spec: &Spec) -> Result<String, String> {
    std::fs::create_dir_all(&spec.dir)
        .map_err(|e| format!("creating {}: {e}", spec.dir.display()))?;
    let path = spec.dir.join("bench.redb");
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing {}: {e}", path.display())),
    }
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(&path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());

    let mut value = vec![0u8; spec.value_bytes];
    let mut latencies = Vec::with_capacity(spec.count);
    let started = Instant::now();
    for i in 0..spec.count as u64 {
        getrandom::getrandom(&mut value).map_err(|e| format!("OS random number generator: {e}"))?;
        let t = Instant::now();
        // Default durability (Immediate): the commit returns after fsync.
        let txn = db.begin_write().map_err(|e| fail(&e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| fail(&e))?;
            table.insert(i, value.as_slice()).map_err(|e| fail(&e))?;
        }
        txn.commit().map_err(|e| fail(&e))?;
        latencies.push(t.elapsed());
    }
    let secs = started.elapsed().as_secs_f64();
    drop(db);
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    latencies.sort_unstable();
    let per_sec = spec.count as f64 / secs;
    let (p50, p99) = (
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0),
    );
    let max = ms(latencies.last().copied().unwrap_or(Duration::ZERO));
    eprintln!(
        "redb: {} durable commits of {} bytes in {secs:.2} s: {per_sec:.0}/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
        spec.count, spec.value_bytes
    );
    Ok(format!(
        "{{\"bench\":\"redb\",\"path\":{},\"count\":{},\"value_bytes\":{},\"secs\":{secs:.4},\
         \"commits_per_sec\":{per_sec:.1},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"max_ms\":{max:.3},\
         \"file_bytes\":{file_bytes}}}",
        json_str(&path.display().to_string()),
        spec.count,
        spec.value_bytes,
    ))
}
