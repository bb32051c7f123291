//! The built tool writes a man page for every visible command of the real
//! clap tree and the three completion scripts, naming those commands.
//!
//! Building this test also builds `gondwana-docgen` with the workspace's
//! features, so `scripts/test` runs that binary (`GONDWANA_DOCGEN`) instead
//! of compiling the dependency graph a second time for `cargo run`.

use std::path::Path;
use std::process::Command;

#[test]
fn every_visible_command_gets_a_page_and_a_completion() {
    let out = tempfile::tempdir().expect("temp dir");
    let status = Command::new(env!("CARGO_BIN_EXE_gondwana-docgen"))
        .arg(out.path())
        .status()
        .expect("run gondwana-docgen");
    assert!(status.success(), "gondwana-docgen failed: {status}");

    let cmd = gondwana_node::command();
    let page = |name: &str| out.path().join("man").join(format!("{name}.1"));
    assert!(page("gondwana").is_file());
    let bash = read(&out.path().join("completions/gondwana.bash"));
    let visible: Vec<_> = cmd.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    assert!(!visible.is_empty());
    for sub in visible {
        let name = sub.get_name();
        let text = read(&page(&format!("gondwana-{name}")));
        assert!(text.contains(".TH"), "gondwana-{name}.1 is not a man page");
        assert!(bash.contains(name), "bash completion lacks {name}");
    }
    for file in ["_gondwana", "gondwana.fish"] {
        assert!(!read(&out.path().join("completions").join(file)).is_empty());
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
