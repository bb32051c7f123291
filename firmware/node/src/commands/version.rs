use crate::build_info::{COMMIT, TARGET, VERSION};

pub fn run(json: bool) {
    if json {
        let v = serde_json::json!({"version": VERSION, "commit": COMMIT, "target": TARGET});
        println!("{v}");
    } else {
        println!("gondwana {VERSION} (commit {COMMIT}, target {TARGET})");
    }
}
