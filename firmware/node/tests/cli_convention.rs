//! The one CLI convention (docs/cli.md, "Conventions"), through the built
//! binary: `--version`, suggestions on typos, an example in every `--help`,
//! `--json` on every command, human text without raw JSON or Unix seconds,
//! `-` as standard output, exit code 2 for any bad argument, and audit
//! records with typed fields.

mod harness;

use std::fs;

use harness::offline::*;
use serde_json::Value;

/// Every visible command path (`["token", "create"]`, …), groups included.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            walk(sub, &path, out);
            out.push(path);
        }
    }
    let mut out = vec![Vec::new()];
    walk(&gondwana_node::command(), &[], &mut out);
    out
}

fn find<'a>(root: &'a clap::Command, path: &[String]) -> &'a clap::Command {
    path.iter().fold(root, |cmd, name| {
        cmd.find_subcommand(name)
            .unwrap_or_else(|| panic!("no subcommand {name}"))
    })
}

/// A hub's config without a daemon (the CLI works on its store).
const HUB: &str = "role = \"hub\"\n[hub]\npublic_endpoint = \"127.0.0.1:51822\"\n\
                   public_url = \"http://127.0.0.1:8799\"\n[wireguard]\nbackend = \"none\"\n\
                   [firewall]\nenabled = false\n";

/// Runs `cmd` with the standard input it was given.
fn with_stdin(cmd: &mut std::process::Command) -> Run {
    let what = harness::describe_command(cmd);
    Run::from_output(what, cmd.output().expect("spawning gondwana"))
}

fn hub() -> Node {
    let hub = Node::with_config(HUB);
    hub.firstboot();
    hub
}

/// No JSON document and no raw Unix time (10 digits from 2001 on) in text
/// meant for people.
#[track_caller]
fn assert_human(run: &Run) {
    let out = run.stdout();
    for line in out.lines() {
        let t = line.trim_start();
        assert!(
            !(t.starts_with('{') || t.starts_with('[') || t.starts_with('"')),
            "raw JSON in human output:\n{}",
            run.describe()
        );
        // A standalone 10-digit number (Unix seconds until 2286), not
        // digits inside a hex or base32 key.
        for word in line.split(|c: char| !c.is_ascii_alphanumeric()) {
            assert!(
                word.len() != 10 || !word.bytes().all(|b| b.is_ascii_digit()),
                "a raw number in human output:\n{}",
                run.describe()
            );
        }
    }
}

#[test]
fn version_flag_prints_version_and_commit() {
    let sub = gondwana(["version"]);
    sub.ok();
    for flag in ["--version", "-V"] {
        let run = gondwana([flag]);
        run.ok();
        let line = run.stdout();
        assert!(line.starts_with("gondwana "), "{}", run.describe());
        assert!(line.contains("(commit "), "{}", run.describe());
        assert_eq!(line, sub.stdout(), "--version and `version` differ");
    }
    let v = gondwana(["version", "--json"]).ok().json();
    assert!(sub.stdout().contains(v["commit"].as_str().unwrap()));
}

#[test]
fn a_typo_gives_a_suggestion_and_exit_2() {
    for (args, suggestion) in [
        (&["staus"][..], "'status'"),
        (&["token", "lst"][..], "'list'"),
        (&["status", "--jsn"][..], "'--json'"),
        (&["identity", "rotate", "--signin"][..], "'--signing'"),
    ] {
        let run = gondwana(args);
        run.expect_code(EXIT_USAGE);
        run.stderr_contains("similar").stderr_contains(suggestion);
    }
}

#[test]
fn every_help_has_examples() {
    let paths = command_paths();
    assert!(paths.len() > 25, "{paths:?}");
    for path in paths {
        let mut args = path.clone();
        args.push("--help".into());
        let run = gondwana(&args);
        run.ok();
        let out = run.stdout();
        let examples = out
            .split_once("Examples:\n")
            .unwrap_or_else(|| panic!("no examples:\n{}", run.describe()))
            .1;
        let first = examples.lines().next().unwrap_or("").trim();
        assert!(
            first.starts_with(
                &format!("gondwana {}", path.join(" "))
                    .trim_end()
                    .to_string()
            ),
            "the first example is not of this command:\n{}",
            run.describe()
        );
    }
}

#[test]
fn every_command_takes_json_and_bad_values_exit_2() {
    let root = gondwana_node::command();
    for path in command_paths() {
        let cmd = find(&root, &path);
        // Groups only dispatch; `run` is the daemon (it prints log lines).
        if cmd.has_subcommands() || path.is_empty() || path == ["run"] {
            continue;
        }
        assert!(
            cmd.get_arguments().any(|a| a.get_long() == Some("json")),
            "`gondwana {}` has no --json",
            path.join(" ")
        );
    }

    // Values clap accepts but the command refuses: 2, like clap's own.
    let hub = hub();
    for args in [
        &["token", "create", "--uses", "0"][..],
        &["token", "create", "--boxname", "Not A Label"][..],
        &["token", "create", "--tag", "with space"][..],
        &["token", "create", "--ttl", "soon"][..],
        &["grant", "add", "--ip", "10.0.0.300", "--port", "22"][..],
        &[
            "enroll",
            "--hub",
            "http://127.0.0.1:9",
            "--hub-key",
            "00",
            "--token",
            "x",
        ][..],
    ] {
        let run = hub.run(args);
        run.expect_code(EXIT_USAGE);
    }
    assert_eq!(
        hub.run(&["token", "list", "--json"]).ok().json(),
        Value::Array(vec![])
    );
}

#[test]
fn json_and_human_output_of_the_hub_commands() {
    let hub = hub();
    let created = hub
        .run(&[
            "token", "create", "--uses", "2", "--ttl", "7d", "--tag", "lab", "--json",
        ])
        .ok()
        .json();
    let id = created["token_id"].as_str().unwrap().to_string();

    let list = hub.run(&["token", "list"]);
    list.ok();
    assert_human(&list);
    let text = list.stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ID ") && lines[0].contains("EXPIRES"),
        "{text}"
    );
    assert!(lines[1].starts_with(&id), "{text}");
    // 7 days from the hub's clock, seen a moment later.
    assert!(
        lines[1].contains("0/2") && (lines[1].contains("in 6d 23h") || lines[1].contains("in 7d")),
        "{text}"
    );
    assert!(
        lines[1].contains("active") && lines[1].contains("lab"),
        "{text}"
    );

    let revoke = hub.run(&["token", "revoke", &id]);
    revoke.ok();
    assert_human(&revoke);
    assert!(revoke.stdout().contains(&id), "{}", revoke.describe());
    let second = hub.run(&["token", "create", "--json"]).ok().json();
    let v = hub
        .run(&[
            "token",
            "revoke",
            second["token_id"].as_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(v["revoked"], second["token_id"]);
    let list = hub.run(&["token", "list"]).ok().stdout();
    assert!(list.contains("revoked"), "{list}");

    // The rest of the commands a hub answers without a daemon.
    for args in [
        &["identity", "show"][..],
        &["identity", "verify"][..],
        &["audit", "show"][..],
        &["audit", "verify"][..],
        &["directory", "show"][..],
        &["directory", "verify"][..],
        &["version"][..],
        &["firstboot"][..],
    ] {
        let human = hub.run(args);
        human.ok();
        assert_human(&human);
        let mut with_json = args.to_vec();
        with_json.push("--json");
        hub.run(&with_json).ok().json();
    }
    let rotated = hub
        .run(&["identity", "rotate", "--wireguard", "--json"])
        .ok()
        .json();
    assert_eq!(rotated["log_entries"], 2, "{rotated}");
    let missing = hub.run(&["node", "show", "nobody", "--json"]);
    missing.expect_code(EXIT_FAILURE);
    missing.stderr_contains("no node nobody");
}

#[test]
fn dash_means_standard_output_everywhere() {
    let hub = hub();
    let cwd = hub.path("cwd");
    fs::create_dir(&cwd).unwrap();
    let in_cwd = |args: &[&str]| {
        let mut cmd = hub.command(args);
        cmd.current_dir(&cwd);
        harness::run_command(&mut cmd)
    };

    // token create: the enroll.toml itself, nothing else, on stdout.
    let run = in_cwd(&["token", "create", "--ttl", "1h", "--out", "-"]);
    run.ok();
    let file: toml::Table = run
        .stdout()
        .parse()
        .unwrap_or_else(|e| panic!("stdout is not an enroll.toml ({e}):\n{}", run.describe()));
    assert!(
        file["token"].as_str().unwrap().starts_with("gwt1-"),
        "{file:?}"
    );
    assert_eq!(file["hub_url"].as_str(), Some("http://127.0.0.1:8799"));
    run.stderr_contains("shown once");

    // directory and identity export: the bundle, byte for byte.
    for what in ["directory", "identity"] {
        let file = hub.path(&format!("{what}.bundle"));
        hub.run(&[what, "export", "--out", file.to_str().unwrap()])
            .ok();
        let to_stdout = in_cwd(&[what, "export", "--out", "-"]);
        to_stdout.ok();
        assert_eq!(to_stdout.stdout, fs::read(&file).unwrap(), "{what}");
        let default = in_cwd(&[what, "export"]);
        assert_eq!(default.ok().stdout, to_stdout.stdout, "{what}");
        // --json: a summary, the bundle inside it with `-`.
        let v = hub.run(&[what, "export", "--json"]).ok().json();
        assert!(v["bundle_base64"].is_string(), "{v}");
        let v = hub
            .run(&[what, "export", "--json", "--out", file.to_str().unwrap()])
            .ok()
            .json();
        assert!(
            v["bundle_base64"].is_null() && v["bytes"].as_u64() > Some(0),
            "{v}"
        );
    }
    assert!(
        harness::offline::dir_entries(&cwd).is_empty(),
        "a file named - was written"
    );

    // `-` as an input is standard input.
    let bundle = hub.path("identity.bundle");
    let mut verify = hub.command(&["identity", "verify", "--file", "-", "--json"]);
    verify.stdin(fs::File::open(&bundle).unwrap());
    let v = with_stdin(&mut verify).ok().json();
    assert_eq!(v["source"], "standard input", "{v}");
    let mut import = hub.command(&["directory", "import", "-", "--json"]);
    import.stdin(fs::File::open(hub.path("directory.bundle")).unwrap());
    let v = with_stdin(&mut import).ok().json();
    assert_eq!(v["imported"], 0, "{v}");
}

#[test]
fn audit_records_have_typed_fields() {
    let hub = hub();
    let created = hub
        .run(&["token", "create", "--uses", "3", "--ttl", "2h", "--json"])
        .ok()
        .json();
    let id = created["token_id"].as_str().unwrap();
    hub.run(&["token", "revoke", id]).ok();
    let rows = hub.run(&["audit", "show", "--json"]).ok().json();
    let rows = rows.as_array().unwrap();
    let create = rows.iter().find(|r| r["kind"] == "token.create").unwrap();
    assert_eq!(create["version"], 2, "{create}");
    assert_eq!(create["fields"]["token"], id, "{create}");
    assert_eq!(create["fields"]["max_uses"], 3, "{create}");
    let expires = create["fields"]["expires"].as_str().unwrap();
    assert!(expires.ends_with('Z') && expires.len() == 20, "{create}");
    let detail = create["detail"].as_str().unwrap();
    assert_eq!(detail, format!("token={id} max_uses=3 expires={expires}"));
    let revoke = rows.iter().find(|r| r["kind"] == "token.revoke").unwrap();
    assert_eq!(revoke["fields"], serde_json::json!({ "token": id }));
    for r in rows {
        let d = r["detail"].as_str().unwrap();
        assert!(!d.contains("Some(") && !d.contains("None"), "{r}");
    }
    let human = hub.run(&["audit", "show"]);
    assert_human(human.ok());
    hub.run(&["audit", "verify"]).ok();
}
