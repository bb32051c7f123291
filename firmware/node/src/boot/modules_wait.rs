//! The daemon's wait for the boot's kernel modules. The images' rcS starts
//! `gondwana modules load` in the background and marks it with
//! [`LOADING_MARKER`], removed when the loader ends; init starts the daemon
//! at once, so its own start (the binary read from the squashfs, the store,
//! a first boot's identity) runs beside the loading, and it waits here only
//! before what needs the modules: the firewall (`nf_tables`) and the
//! WireGuard backend probe (`wireguard`). Without the marker (any host that
//! is not one of our images, a daemon restart) nothing waits.

use std::path::Path;
use std::time::{Duration, Instant};

/// Exists while the boot's module loader runs (docs/image.md).
pub const LOADING_MARKER: &str = "/run/gondwana/modules/loading";

/// How the wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited {
    /// No loading was under way.
    NotLoading,
    /// The loader finished after this long.
    Done(Duration),
    /// It still ran at the limit: the daemon goes on (a backend without
    /// its module falls back to userspace; docs/image.md).
    GaveUp(Duration),
}

/// Waits, polling every 20 ms, until `marker` is gone or `limit` passed.
pub async fn until_loaded(marker: &Path, limit: Duration) -> Waited {
    let started = Instant::now();
    if !marker.exists() {
        return Waited::NotLoading;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let waited = started.elapsed();
        if !marker.exists() {
            return Waited::Done(waited);
        }
        if waited >= limit {
            return Waited::GaveUp(waited);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_the_marker_to_go_and_gives_up_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("loading");
        let long = Duration::from_secs(10);
        assert_eq!(until_loaded(&marker, long).await, Waited::NotLoading);

        std::fs::write(&marker, "").unwrap();
        let gone = marker.clone();
        let remover = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::fs::remove_file(gone).unwrap();
        });
        match until_loaded(&marker, long).await {
            Waited::Done(d) => assert!(d >= Duration::from_millis(100), "{d:?}"),
            other => panic!("{other:?}"),
        }
        remover.await.unwrap();

        std::fs::write(&marker, "").unwrap();
        let short = Duration::from_millis(60);
        assert!(matches!(until_loaded(&marker, short).await, Waited::GaveUp(d) if d >= short));
    }
}
