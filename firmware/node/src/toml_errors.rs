//! TOML errors that quote nothing from the file. The `toml` crate's
//! message shows the offending line with a caret, and serde's type errors
//! quote the value: for enroll.toml that is the token secret (an unquoted
//! `token = gwt1-…` is a syntax error on exactly that line), and enrolment
//! errors travel into `gondwana status` and the unauthenticated
//! `GET /v1/status`. So a report names the line and the key (only when it
//! is one of ours: a line that is not `key = value` may be the secret
//! itself) and says what was expected, never what was found.

/// Whether a report may quote what serde said about a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// Never (enroll.toml: every value may be the secret).
    Never,
    /// For keys of ours (the config: none of its values is a secret, and
    /// "unknown variant `kernal`, expected `kernel`" is worth showing).
    OfKnownKeys,
}

/// `line N, key `k`: problem` for `error` found in `text`; `keys` are the
/// dotted names this file may hold (`enroll.retry_initial_secs`).
pub fn describe(text: &str, error: &toml::de::Error, keys: &[&str], values: Values) -> String {
    let message = error.message();
    if let Some(rest) = message.strip_prefix("missing field ") {
        // Serde names the field from our own struct; the span is the
        // table's, so no line.
        return match backticked(rest).filter(|f| keys.iter().any(|k| k.ends_with(f))) {
            Some(field) => format!("missing key `{field}`"),
            None => "a required key is missing".to_string(),
        };
    }
    let line = error
        .span()
        .map(|span| line_number(text, span.start))
        .filter(|&n| n > 0);
    let key = line
        .and_then(|n| key_on_line(text, n))
        .filter(|k| keys.contains(&k.as_str()));
    let syntax = toml::from_str::<toml::Table>(text).is_err();
    let problem = if syntax {
        // The parser's words are its own static text; refuse them anyway
        // if they happen to contain the line's value.
        let said = first_line(message);
        let value = line.and_then(|n| value_on_line(text, n));
        match value {
            Some(v) if said.contains(v) => "not valid TOML".to_string(),
            _ if said.is_empty() => "not valid TOML".to_string(),
            _ => format!("not valid TOML ({said})"),
        }
    } else if let Some(rest) = message.strip_prefix("unknown field ") {
        // "`colour`, expected one of `a`, `b`": the list is our field
        // names; the unknown one is named only when it looks like a typo
        // of one, never like a secret (ours are 44 characters and more).
        let name = backticked(rest)
            .filter(|n| n.len() <= 32)
            .filter(|n| {
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            })
            .map(|n| format!(" `{n}`"))
            .unwrap_or_default();
        match rest.split_once(", expected ") {
            Some((_, expected)) => format!("unknown key{name} (expected {expected})"),
            None => format!("unknown key{name}"),
        }
    } else if values == Values::OfKnownKeys && key.is_some() {
        first_line(message).to_string()
    } else {
        match message.rsplit_once(", expected ") {
            Some((_, expected)) if !expected.contains('"') => {
                format!("wrong value (expected {})", first_line(expected))
            }
            _ => "wrong value".to_string(),
        }
    };
    match (line, key) {
        (Some(n), Some(k)) => format!("line {n}, key `{k}`: {problem}"),
        (Some(n), None) => format!("line {n}: {problem}"),
        (None, _) => problem,
    }
}

/// 1-based line of byte `offset` in `text`.
pub fn line_number(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line (1-based) where `key` of `table` (`""` for the top level) is
/// set, for errors found after parsing (a value that parsed but is wrong).
pub fn line_of_key(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(name) = table_header(line) {
            current = name;
        } else if current == table && bare_key(line).as_deref() == Some(key) {
            return Some(i + 1);
        }
    }
    None
}

/// The dotted key set on line `n`, including its `[table]`.
fn key_on_line(text: &str, n: usize) -> Option<String> {
    let mut table = String::new();
    for (i, line) in text.lines().enumerate() {
        if i + 1 == n {
            let key = bare_key(line)?;
            return Some(if table.is_empty() {
                key
            } else {
                format!("{table}.{key}")
            });
        }
        if let Some(name) = table_header(line) {
            table = name;
        }
    }
    None
}

fn table_header(line: &str) -> Option<String> {
    let inner = line.trim().strip_prefix('[')?.split(']').next()?.trim();
    Some(inner.to_string())
}

fn bare_key(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty()).then(|| key.to_string())
}

fn value_on_line(text: &str, n: usize) -> Option<&str> {
    let line = text.lines().nth(n.checked_sub(1)?)?;
    let value = line.split_once('=').map_or(line, |(_, v)| v).trim();
    (value.len() >= 4).then_some(value)
}

fn backticked(text: &str) -> Option<&str> {
    text.strip_prefix('`')?.split('`').next()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        token: String,
        #[serde(default)]
        port: u16,
        #[serde(default)]
        sub: Sub,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sub {
        #[serde(default)]
        secs: f64,
    }

    const KEYS: &[&str] = &["token", "port", "sub.secs"];
    const SECRET: &str = "gwt1-abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst";

    fn report(text: &str) -> String {
        let error = toml::from_str::<File>(text).unwrap_err();
        let text_report = describe(text, &error, KEYS, Values::Never);
        assert!(!text_report.contains("abcdefghij"), "{text_report}");
        text_report
    }

    #[test]
    fn an_unquoted_secret_is_named_by_line_and_key_only() {
        let r = report(&format!("port = 1\ntoken = {SECRET}\n"));
        assert!(r.starts_with("line 2, key `token`: "), "{r}");
    }

    #[test]
    fn a_bare_secret_line_is_not_taken_for_a_key() {
        let r = report(&format!("token = \"x\"\n{SECRET}\n"));
        assert!(r.starts_with("line 2: "), "{r}");
        let r = report(&format!("token = \"x\"\n{SECRET} = 1\n"));
        assert!(r.starts_with("line 2: unknown key (expected"), "{r}");
        let r = report("token = \"x\"\ncolour = 1\n");
        assert!(
            r.starts_with("line 2: unknown key `colour` (expected"),
            "{r}"
        );
    }

    #[test]
    fn types_missing_and_tables() {
        let r = report(&format!("token = 5\n# {SECRET}\n"));
        assert!(
            r.starts_with("line 1, key `token`: wrong value (expected"),
            "{r}"
        );
        let r = report("port = 1\n");
        assert_eq!(r, "missing key `token`");
        let r = report("token = \"abcdefghijk\"\n[sub]\nsecs = \"abcdefghijk\"\n");
        assert!(r.starts_with("line 3, key `sub.secs`: wrong value"), "{r}");
        let r = report("token = \"x\"\nport = 70000\n");
        assert!(r.starts_with("line 2, key `port`: "), "{r}");
        let r = report(&format!("token = \"{SECRET}\"\ntoken = \"{SECRET}\"\n"));
        assert!(r.starts_with("line 2"), "{r}");
        // Serde's own words about a known key, when values may be shown.
        let error = toml::from_str::<File>("token = \"x\"\nport = \"p\"\n").unwrap_err();
        let r = describe(
            "token = \"x\"\nport = \"p\"\n",
            &error,
            KEYS,
            Values::OfKnownKeys,
        );
        assert!(r.starts_with("line 2, key `port`: invalid type"), "{r}");
    }

    #[test]
    fn lines_of_keys_after_parsing() {
        let text = "a = 1\n[enroll]\nretry_initial_secs = nan\n";
        assert_eq!(line_of_key(text, "enroll", "retry_initial_secs"), Some(3));
        assert_eq!(line_of_key(text, "", "a"), Some(1));
        assert_eq!(line_of_key(text, "", "retry_initial_secs"), None);
    }
}
