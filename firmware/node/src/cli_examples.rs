//! The "Examples" section of every `--help`, kept apart from the argument
//! definitions in `cli.rs` and attached to the clap command tree by
//! [`command`]. The same tree feeds the build-time completions and man
//! pages (`firmware/docgen`), so they carry the examples too.

use clap::{Command, CommandFactory};

use crate::cli::Cli;

/// `(command path, example lines)`. The path is the subcommand names after
/// `gondwana`, separated by spaces; "" is the top level. A unit test checks
/// that every visible command has an entry and every entry a command.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "",
        "gondwana status\n  gondwana --config /etc/gondwana/config.toml token create --out enroll.toml\n  gondwana grant add --ip 10.64.0.7 --port 22 --timeout 30m",
    ),
    (
        "firstboot",
        "gondwana firstboot\n  gondwana --state-dir /data/gondwana firstboot --json",
    ),
    (
        "identity",
        "gondwana identity show\n  gondwana identity export --out identity.bundle",
    ),
    (
        "identity show",
        "gondwana identity show\n  gondwana identity show --json",
    ),
    (
        "identity rotate",
        "gondwana identity rotate --wireguard\n  gondwana identity rotate --signing --json",
    ),
    (
        "identity verify",
        "gondwana identity verify\n  gondwana identity verify --file identity.bundle\n  ssh box gondwana identity export | gondwana identity verify --file -",
    ),
    (
        "identity export",
        "gondwana identity export --out identity.bundle\n  gondwana identity export | ssh hub 'cat > box.bundle'",
    ),
    ("audit", "gondwana audit show\n  gondwana audit verify"),
    (
        "audit show",
        "gondwana audit show\n  gondwana audit show --json | jq '.[] | select(.kind == \"firewall.grant\") | .fields'",
    ),
    (
        "audit verify",
        "gondwana audit verify\n  gondwana audit verify --json",
    ),
    ("version", "gondwana version\n  gondwana version --json"),
    (
        "run",
        "gondwana run\n  gondwana --config /etc/gondwana/config.toml run",
    ),
    (
        "status",
        "gondwana status\n  gondwana status --json | jq .enrolment.state",
    ),
    (
        "logs",
        "gondwana logs -n 50\n  gondwana logs -f\n  gondwana logs --json | jq -r 'select(.level == \"ERROR\") | .message'",
    ),
    (
        "enroll",
        "gondwana enroll /boot/gondwana/enroll.toml\n  ssh hub gondwana token create --out - | gondwana enroll -\n  gondwana enroll --hub http://hub.example.net:8799 --hub-key 3f2a… --token gwt1-…\n  gondwana enroll --hub http://10.0.0.1:8799 --hub-key 3f2a… --token gwt1-… --boxname kitchen --json",
    ),
    (
        "token",
        "gondwana token create --out enroll.toml\n  gondwana token list",
    ),
    (
        "token create",
        "gondwana token create --out enroll.toml\n  gondwana token create --uses 5 --ttl 24h --tag lab --out enroll.toml\n  gondwana token create --boxname kitchen --replace --out - > /media/boot/gondwana/enroll.toml",
    ),
    (
        "token list",
        "gondwana token list\n  gondwana token list --json",
    ),
    (
        "token revoke",
        "gondwana token revoke 4f1c2a9e0b7d3c55\n  gondwana token revoke 4f1c2a9e0b7d3c55 --json",
    ),
    ("node", "gondwana node list\n  gondwana node show kitchen"),
    (
        "node list",
        "gondwana node list\n  gondwana node list --json",
    ),
    (
        "node show",
        "gondwana node show kitchen\n  gondwana node show gw:abcd… --json",
    ),
    (
        "node revoke",
        "gondwana node revoke kitchen --reason \"box stolen\"\n  gondwana node revoke gw:abcd… --json",
    ),
    (
        "directory",
        "gondwana directory show\n  gondwana directory verify",
    ),
    (
        "directory show",
        "gondwana directory show\n  gondwana directory show --json",
    ),
    (
        "directory verify",
        "gondwana directory verify\n  gondwana directory verify --json",
    ),
    (
        "directory export",
        "gondwana directory export --out directory.bundle\n  gondwana directory export | ssh box gondwana directory import -",
    ),
    (
        "directory import",
        "gondwana directory import directory.bundle\n  gondwana directory import - < directory.bundle",
    ),
    (
        "grant",
        "gondwana grant add --ip 10.64.0.7 --port 22 --timeout 30m\n  gondwana grant list",
    ),
    (
        "grant add",
        "gondwana grant add --ip 10.64.0.7 --port 22\n  gondwana grant add --ip 10.64.0.7 --port 8080 --timeout 12h\n  gondwana grant add --node kitchen --ip 10.64.0.1 --port 22 --timeout 1h",
    ),
    (
        "grant del",
        "gondwana grant del --ip 10.64.0.7 --port 22\n  gondwana grant del --node kitchen --ip 10.64.0.1 --port 22",
    ),
    (
        "grant list",
        "gondwana grant list\n  gondwana grant list --json",
    ),
    (
        "service",
        "gondwana service offer web --port 8080 --approve auto\n  gondwana service list",
    ),
    (
        "service offer",
        "gondwana service offer web --port 8080 --approve auto\n  gondwana service offer dns --port 53 --proto udp --approve allow:kitchen,lab --description 'resolver'\n  gondwana service offer files --port 445 --approve manual --max-duration 7d --json",
    ),
    (
        "service withdraw",
        "gondwana service withdraw web\n  gondwana service withdraw web --json",
    ),
    (
        "service list",
        "gondwana service list\n  gondwana service list --json | jq '.[] | select(.approve == \"auto\")'",
    ),
    (
        "service subscribe",
        "gondwana service subscribe web@kitchen\n  gondwana service subscribe dns@cellar --duration 10m --json",
    ),
    (
        "service unsubscribe",
        "gondwana service unsubscribe web@kitchen",
    ),
    (
        "service requests",
        "gondwana service requests\n  gondwana service requests --json",
    ),
    (
        "service approve",
        "gondwana service approve files hall\n  gondwana service approve files 10.64.0.9",
    ),
    (
        "service deny",
        "gondwana service deny files hall --reason \"not this one\"\n  gondwana service deny files hall --json",
    ),
    (
        "service show",
        "gondwana service show web@kitchen\n  gondwana service show web@kitchen --json",
    ),
    (
        "update",
        "gondwana update install /tmp/gondwana-mochabin.bundle\n  gondwana update publish /tmp/gondwana-mochabin.bundle\n  gondwana update status",
    ),
    (
        "update install",
        "gondwana update install /tmp/gondwana-mochabin.bundle\n  gondwana update install /tmp/gondwana-mochabin.bundle --json",
    ),
    (
        "update publish",
        "gondwana update publish /tmp/gondwana-mochabin.bundle\n  gondwana update publish /tmp/gondwana-mochabin.bundle --record /tmp/staged.release --json",
    ),
    (
        "update status",
        "gondwana update status\n  gondwana update status --json | jq '.slots[] | {slot, state}'",
    ),
    (
        "update trust",
        "gondwana update trust /tmp/1.rotation\n  gondwana update trust /tmp/1.rotation --json",
    ),
    (
        "update cancel",
        "gondwana update cancel\n  gondwana update cancel --json",
    ),
];

/// The `gondwana` command tree with the examples attached: what `main`
/// parses with, and what `firmware/docgen` renders.
pub fn command() -> Command {
    let mut root = Cli::command();
    for (path, text) in EXAMPLES {
        root = with_examples(root, path, text);
    }
    root
}

fn with_examples(cmd: Command, path: &str, text: &'static str) -> Command {
    let help = format!("Examples:\n  {text}");
    match path.split_once(' ') {
        _ if path.is_empty() => cmd.after_help(help),
        Some((first, rest)) => {
            let rest = rest.to_string();
            cmd.mut_subcommand(first, move |c| with_examples(c, &rest, text))
        }
        None => cmd.mut_subcommand(path, move |c| c.after_help(help)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible_paths(cmd: &Command, prefix: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            let path = if prefix.is_empty() {
                sub.get_name().to_string()
            } else {
                format!("{prefix} {}", sub.get_name())
            };
            visible_paths(sub, &path, out);
            out.push(path);
        }
    }

    #[test]
    fn every_visible_command_has_examples_and_every_example_a_command() {
        let mut paths = vec![String::new()];
        visible_paths(&Cli::command(), "", &mut paths);
        for path in &paths {
            assert!(
                EXAMPLES.iter().any(|(p, _)| p == path),
                "`gondwana {path}` has no examples in cli_examples.rs"
            );
        }
        for (path, _) in EXAMPLES {
            assert!(paths.contains(&path.to_string()), "no command {path:?}");
        }
        command().debug_assert();
    }
}
