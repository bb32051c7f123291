pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("GONDWANA_GIT_COMMIT");
pub const TARGET: &str = env!("GONDWANA_TARGET");

pub fn run(json: bool) {
    if json {
        let v = serde_json::json!({"version": VERSION, "commit": COMMIT, "target": TARGET});
        println!("{v}");
    } else {
        println!("gondwana {VERSION} (commit {COMMIT}, target {TARGET})");
    }
}
