//! `gondwana-docgen OUT_DIR`: writes the shell completions and man pages of
//! the `gondwana` command line from its clap tree (`gondwana_node::command()`,
//! the same one the binary parses with, examples included):
//!
//! - `OUT_DIR/completions/gondwana.bash`, `_gondwana` (zsh), `gondwana.fish`
//! - `OUT_DIR/man/gondwana.1` and one page per visible subcommand,
//!   `gondwana-token-create.1` …
//!
//! A build-time tool (scripts/docgen): clap_complete and clap_mangen never
//! reach the shipped binary.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Command;
use clap_complete::Shell;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: gondwana-docgen OUT_DIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(&out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gondwana-docgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes every file; returns their paths.
fn generate(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut cmd = gondwana_node::command();
    cmd.build();
    let mut written = Vec::new();

    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd, "gondwana", &completions)?;
        written.push(path);
    }

    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    write_pages(&cmd, "gondwana", &man, &mut written)?;
    Ok(written)
}

/// The page of `cmd` (named `name`) and, recursively, of its visible
/// subcommands (`gondwana-token-create.1`).
fn write_pages(
    cmd: &Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    // clap names are `&'static str` (without its "string" feature, which
    // would reach the shipped binary through feature unification).
    let static_name: &'static str = Box::leak(name.to_string().into_boxed_str());
    let page = cmd.clone().name(static_name);
    let path = dir.join(format!("{name}.1"));
    let mut bytes = Vec::new();
    clap_mangen::Man::new(page).render(&mut bytes)?;
    std::fs::write(&path, bytes)?;
    written.push(path);
    for sub in cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
    {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible command appears in every completion script and has a
    /// man page that names it and carries its examples.
    #[test]
    fn completions_and_man_pages_cover_every_command() {
        let out = std::env::temp_dir().join(format!("gondwana-docgen-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        generate(&out).unwrap();
        let root = gondwana_node::command();
        let mut paths = Vec::new();
        collect(&root, &mut Vec::new(), &mut paths);
        assert!(paths.len() > 25, "{paths:?}");
        for (file, json_flag) in [
            ("gondwana.bash", "--json"),
            ("_gondwana", "--json"),
            ("gondwana.fish", "-l json"),
        ] {
            let text = std::fs::read_to_string(out.join("completions").join(file)).unwrap();
            for path in &paths {
                let last = path.last().unwrap();
                assert!(text.contains(last.as_str()), "{file} lacks {path:?}");
            }
            assert!(text.contains(json_flag), "{file} lacks --json");
        }
        for path in &paths {
            let page = out
                .join("man")
                .join(format!("gondwana-{}.1", path.join("-")));
            let text = std::fs::read_to_string(&page)
                .unwrap_or_else(|e| panic!("{}: {e}", page.display()));
            assert!(text.starts_with(".ie"), "{} is not roff", page.display());
            assert!(text.contains(".TH gondwana"), "{}", page.display());
            assert!(
                text.contains("Examples:"),
                "{} lacks examples",
                page.display()
            );
        }
        let top = std::fs::read_to_string(out.join("man/gondwana.1")).unwrap();
        for sub in root.get_subcommands().filter(|c| !c.is_hide_set()) {
            assert!(
                top.contains(sub.get_name()),
                "gondwana.1 lacks {}",
                sub.get_name()
            );
        }
        assert!(
            !top.contains("wireguard\\-userspace"),
            "a hidden command is documented"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }

    fn collect(cmd: &Command, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            prefix.push(sub.get_name().to_string());
            out.push(prefix.clone());
            collect(sub, prefix, out);
            prefix.pop();
        }
    }
}
