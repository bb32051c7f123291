//! `gondwana-bench`: the load drivers behind `scripts/bench`. Not part of the
//! shipped `gondwana` binary.
//!
//! ```text
//! gondwana-bench enrol --hub URL --token T --hub-key HEX [--count N] [--concurrency C]
//! gondwana-bench redb  --dir DIR [--count N] [--value-bytes B]
//! gondwana-bench lending --gondwana BIN [--count N]
//! ```
//!
//! Each prints one JSON object on standard output (the figures) and a human
//! summary on standard error. Nothing is asserted: a failed enrolment is
//! counted and reported, and the exit status is 0 as long as the run itself
//! could be made.

mod enrol;
mod lending;
mod redb_ref;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage:
  gondwana-bench enrol --hub URL --token T --hub-key HEX [--count N] [--concurrency C]
      Pre-generates N node identities (genesis log) in memory, then enrols
      them into the hub at URL (http://IP:PORT, the enrolment listener) from
      C concurrent clients: GET /v1/enroll/nonce, build the submission, POST
      /v1/enroll, decode the response and verify the grant against HEX.
      Defaults: N = 1000, C = 16.
  gondwana-bench redb --dir DIR [--count N] [--value-bytes B]
      The reference: N durable (Durability::Immediate) redb write
      transactions in DIR/bench.redb, each inserting one B-byte value.
      Defaults: N = 1000, B = 300.
  gondwana-bench lending --gondwana BIN [--count N]
      Provider CPU per N subscriptions (root, in a network namespace of its
      own): core's ProviderBook verifies and decides N signed auto
      subscriptions, then BIN firewall-bench adds the N grants in one
      netlink batch; against N `nft add element` processes. Default N = 1000.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gondwana-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let Some((command, rest)) = args.split_first() else {
        return Err(USAGE.into());
    };
    let opts = Opts::parse(rest)?;
    match command.as_str() {
        "enrol" | "enroll" => {
            let spec = enrol::Spec {
                hub: opts.required("hub")?,
                token: opts.required("token")?,
                hub_key: opts.required("hub-key")?,
                count: opts.number("count", 1000)?,
                concurrency: opts.number("concurrency", 16)?,
            };
            opts.only(&["hub", "token", "hub-key", "count", "concurrency"])?;
            enrol::run(&spec)
        }
        "redb" => {
            let spec = redb_ref::Spec {
                dir: opts.required("dir")?.into(),
                count: opts.number("count", 1000)?,
                value_bytes: opts.number("value-bytes", 300)?,
            };
            opts.only(&["dir", "count", "value-bytes"])?;
            redb_ref::run(&spec)
        }
        "lending" => {
            let spec = lending::Spec {
                gondwana: opts.required("gondwana")?,
                count: opts.number("count", 1000)?,
            };
            opts.only(&["gondwana", "count"])?;
            lending::run(&spec)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

/// `--name value` pairs.
struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, String> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {arg:?}\n{USAGE}"))?;
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                    (name.to_string(), v.clone())
                }
            };
            map.insert(name, value);
        }
        Ok(Opts(map))
    }

    fn required(&self, name: &str) -> Result<String, String> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("--{name} is required\n{USAGE}"))
    }

    fn number(&self, name: &str, default: usize) -> Result<usize, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("--{name} {v:?}: a positive whole number")),
            },
        }
    }

    fn only(&self, known: &[&str]) -> Result<(), String> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!("unknown option --{k}\n{USAGE}")),
            None => Ok(()),
        }
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted samples, in ms.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    ms(sorted[i])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| format!("OS random number generator: {e}"))?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&s, 50.0), 50.0);
        assert_eq!(percentile_ms(&s, 99.0), 99.0);
        assert_eq!(percentile_ms(&s, 100.0), 100.0);
        assert_eq!(percentile_ms(&s[..1], 99.0), 1.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }

    #[test]
    fn options() {
        let args: Vec<String> = ["--count", "5", "--dir=/x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = Opts::parse(&args).unwrap();
        assert_eq!(o.number("count", 1).unwrap(), 5);
        assert_eq!(o.number("other", 7).unwrap(), 7);
        assert_eq!(o.required("dir").unwrap(), "/x");
        assert!(o.only(&["count"]).is_err());
        assert!(o.only(&["count", "dir"]).is_ok());
        assert!(Opts::parse(&["x".to_string()]).is_err());
        let zero = Opts::parse(&["--count".into(), "0".into()]).unwrap();
        assert!(zero.number("count", 1).is_err());
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
