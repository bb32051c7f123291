//! `gondwana`: one static binary for every Gondwana box.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    gondwana_node::main()
}
