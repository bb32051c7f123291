//! Counters and gauges, rendered in the Prometheus text exposition format
//! (version 0.0.4) for `GET /metrics`.
//!
//! Written here rather than with `prometheus-client`: that crate's typed
//! families, encoders and derive macro (plus `parking_lot`) serve programs with
//! histograms and many metric types; the daemon exposes a few dozen integers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use http::StatusCode;

use super::message::ApiResponse;

pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label sets per metric beyond which new ones are dropped: label values
/// must come from small fixed sets, never from request input.
pub const MAX_SERIES_PER_METRIC: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A registry of named counters and gauges, each with any number of label
/// sets. Shared by reference (`Arc<Metrics>`); every method takes `&self`.
///
/// Register a metric with [`Metrics::counter`] or [`Metrics::gauge`] to give
/// it its `# HELP` text; a name used unregistered becomes a counter (through
/// `inc`/`add`) or a gauge (through `set`) without help. Names and label
/// names must be valid Prometheus names: an invalid one panics in debug
/// builds and is ignored in release builds.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<BTreeMap<String, Family>>,
}

#[derive(Debug)]
struct Family {
    kind: Kind,
    help: String,
    /// Rendered label set (`a="x",b="y"`, sorted by name) -> value.
    series: BTreeMap<String, u64>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a counter (names conventionally end in `_total`).
    pub fn counter(&self, name: &str, help: &str) {
        self.register(name, Kind::Counter, help);
    }

    pub fn gauge(&self, name: &str, help: &str) {
        self.register(name, Kind::Gauge, help);
    }

    /// Adds 1.
    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1);
    }

    /// Adds `n` (saturating).
    pub fn add(&self, name: &str, labels: &[(&str, &str)], n: u64) {
        self.update(name, Kind::Counter, labels, |v| v.saturating_add(n));
    }

    /// Sets a gauge.
    pub fn set(&self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.update(name, Kind::Gauge, labels, |_| value);
    }

    /// The current value, if that series exists.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let key = label_key(labels)?;
        let families = self.lock();
        families.get(name)?.series.get(&key).copied()
    }

    /// Everything, in the text exposition format: families sorted by name,
    /// each with `# HELP` (when registered with help) and `# TYPE`, then its
    /// samples sorted by label set. Families without samples are left out.
    pub fn render(&self) -> String {
        let families = self.lock();
        let mut out = String::new();
        for (name, family) in families.iter().filter(|(_, f)| !f.series.is_empty()) {
            if !family.help.is_empty() {
                let _ = writeln!(out, "# HELP {name} {}", escape_help(&family.help));
            }
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            for (labels, value) in &family.series {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        }
        out
    }

    /// `render()` followed by `extra` (families computed at scrape time,
    /// see [`write_family`]) as a 200 response with the exposition content
    /// type.
    pub fn response_with(&self, extra: &str) -> ApiResponse {
        let mut text = self.render();
        text.push_str(extra);
        ApiResponse::bytes(StatusCode::OK, PROMETHEUS_CONTENT_TYPE, text.into())
    }

    /// `render()` as a 200 response with the exposition content type.
    #[cfg(test)]
    pub fn response(&self) -> ApiResponse {
        self.response_with("")
    }

    /// Adds 0 to each label set, so a counter is scraped from the start
    /// (a series that appears at its first event loses that event to
    /// `rate()`).
    pub fn zero(&self, name: &str, label_sets: &[&[(&str, &str)]]) {
        for labels in label_sets {
            self.add(name, labels, 0);
        }
    }

    fn register(&self, name: &str, kind: Kind, help: &str) {
        if !checked(is_metric_name(name), name) {
            return;
        }
        let mut families = self.lock();
        let family = families.entry(name.to_string()).or_insert_with(|| Family {
            kind,
            help: String::new(),
            series: BTreeMap::new(),
        });
        family.kind = kind;
        family.help = help.to_string();
    }

    fn update(&self, name: &str, kind: Kind, labels: &[(&str, &str)], f: impl FnOnce(u64) -> u64) {
        if !checked(is_metric_name(name), name) {
            return;
        }
        let Some(key) = label_key(labels) else {
            checked(false, &format!("{name} labels {labels:?}"));
            return;
        };
        let mut families = self.lock();
        let family = families.entry(name.to_string()).or_insert_with(|| Family {
            kind,
            help: String::new(),
            series: BTreeMap::new(),
        });
        let len = family.series.len();
        match family.series.get_mut(&key) {
            Some(value) => *value = f(*value),
            None if len < MAX_SERIES_PER_METRIC => {
                family.series.insert(key, f(0));
            }
            None => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Family>> {
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A sample's value. Integers only, and hundredths for CPU seconds: no
/// float formatting or parsing in the binary (its size, docs/architecture.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num {
    Int(u64),
    Hundredths(u64),
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::Int(n) => write!(f, "{n}"),
            Num::Hundredths(n) => write!(f, "{}.{:02}", n / 100, n % 100),
        }
    }
}

/// Writes one family computed at scrape time (not held in a [`Metrics`]):
/// `# HELP`, `# TYPE`, then its samples. The header is written even with no
/// samples, so a scraper (and the dashboard test) sees every family the
/// daemon can export.
pub fn write_family(
    out: &mut String,
    name: &str,
    kind: Kind,
    help: &str,
    samples: &[(Vec<(&str, &str)>, Num)],
) {
    if !checked(is_metric_name(name), name) {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
    for (labels, value) in samples {
        let Some(key) = label_key(labels) else {
            checked(false, &format!("{name} labels {labels:?}"));
            continue;
        };
        if key.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{key}}} {value}");
        }
    }
}

/// `valid`, asserting it in debug builds.
fn checked(valid: bool, what: &str) -> bool {
    debug_assert!(valid, "invalid metric or label name: {what}");
    valid
}

/// The canonical rendering of a label set, or `None` if a label name is
/// invalid or repeated.
fn label_key(labels: &[(&str, &str)]) -> Option<String> {
    let mut sorted: Vec<_> = labels.to_vec();
    sorted.sort_unstable_by_key(|(name, _)| *name);
    if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let mut key = String::new();
    for (i, (name, value)) in sorted.iter().enumerate() {
        if !is_label_name(name) {
            return None;
        }
        if i > 0 {
            key.push(',');
        }
        let _ = write!(key, "{name}=\"{}\"", escape_label_value(value));
    }
    Some(key)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn escape_help(s: &str) -> String {
    s.replace('\\', r"\\").replace('\n', r"\n")
}

fn escape_label_value(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::new();
        m.counter("gondwana_http_requests_total", "HTTP requests answered.");
        m.gauge("gondwana_peers", "Peers by state.");
        m.inc(
            "gondwana_http_requests_total",
            &[("route", "health"), ("code", "200")],
        );
        m.inc(
            "gondwana_http_requests_total",
            &[("code", "200"), ("route", "health")],
        );
        m.add(
            "gondwana_http_requests_total",
            &[("code", "404"), ("route", "other")],
            5,
        );
        m.set("gondwana_peers", &[("state", "up")], 3);
        m.set("gondwana_peers", &[("state", "up")], 2);
        m.set("gondwana_peers", &[("state", "down")], 1);
        m.set("gondwana_up", &[], 1);
        assert_eq!(
            m.render(),
            "# HELP gondwana_http_requests_total HTTP requests answered.\n\
             # TYPE gondwana_http_requests_total counter\n\
             gondwana_http_requests_total{code=\"200\",route=\"health\"} 2\n\
             gondwana_http_requests_total{code=\"404\",route=\"other\"} 5\n\
             # HELP gondwana_peers Peers by state.\n\
             # TYPE gondwana_peers gauge\n\
             gondwana_peers{state=\"down\"} 1\n\
             gondwana_peers{state=\"up\"} 2\n\
             # TYPE gondwana_up gauge\n\
             gondwana_up 1\n"
        );
        assert_eq!(
            m.get(
                "gondwana_http_requests_total",
                &[("route", "health"), ("code", "200")]
            ),
            Some(2)
        );
        assert_eq!(m.get("gondwana_peers", &[("state", "sideways")]), None);
        assert_eq!(m.get("nope", &[]), None);
    }

    #[test]
    fn registered_metric_without_samples_is_not_rendered() {
        let m = Metrics::new();
        m.counter("a_total", "A.");
        assert_eq!(m.render(), "");
        m.add("a_total", &[], 0);
        assert_eq!(
            m.render(),
            "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n"
        );
    }

    #[test]
    fn escapes_help_and_label_values() {
        let m = Metrics::new();
        m.counter("x_total", "back\\slash and\nnewline \"quotes\" stay");
        m.inc("x_total", &[("path", "a\\b\"c\nd")]);
        assert_eq!(
            m.render(),
            "# HELP x_total back\\\\slash and\\nnewline \"quotes\" stay\n\
             # TYPE x_total counter\n\
             x_total{path=\"a\\\\b\\\"c\\nd\"} 1\n"
        );
    }

    #[test]
    fn families_computed_at_scrape_time() {
        let mut out = String::new();
        write_family(&mut out, "p_seconds", Kind::Gauge, "P.", &[]);
        write_family(
            &mut out,
            "q_total",
            Kind::Counter,
            "Q.",
            &[
                (vec![("peer", "a\"b")], Num::Hundredths(150)),
                (vec![], Num::Int(2)),
            ],
        );
        assert_eq!(
            out,
            "# HELP p_seconds P.\n# TYPE p_seconds gauge\n\
             # HELP q_total Q.\n# TYPE q_total counter\n\
             q_total{peer=\"a\\\"b\"} 1.50\nq_total 2\n"
        );
        let m = Metrics::new();
        m.zero("z_total", &[&[("reason", "a")], &[("reason", "b")]]);
        assert_eq!(m.get("z_total", &[("reason", "b")]), Some(0));
    }

    #[test]
    fn counters_saturate() {
        let m = Metrics::new();
        m.add("c_total", &[], u64::MAX - 1);
        m.add("c_total", &[], 5);
        assert_eq!(m.get("c_total", &[]), Some(u64::MAX));
    }

    #[test]
    fn series_per_metric_are_capped() {
        let m = Metrics::new();
        for i in 0..MAX_SERIES_PER_METRIC + 10 {
            m.inc("c_total", &[("i", &i.to_string())]);
        }
        let samples = m
            .render()
            .lines()
            .filter(|l| l.starts_with("c_total{"))
            .count();
        assert_eq!(samples, MAX_SERIES_PER_METRIC);
        assert_eq!(m.get("c_total", &[("i", "0")]), Some(1));
    }

    #[test]
    fn name_rules() {
        assert!(is_metric_name("gondwana_up"));
        assert!(is_metric_name("ns:sub_metric_total"));
        assert!(is_metric_name("_x"));
        assert!(!is_metric_name(""));
        assert!(!is_metric_name("1x"));
        assert!(!is_metric_name("a-b"));
        assert!(!is_metric_name("a b"));
        assert!(is_label_name("code"));
        assert!(is_label_name("_c1"));
        assert!(!is_label_name("__reserved"));
        assert!(!is_label_name("a:b"));
        assert!(!is_label_name(""));
        assert_eq!(label_key(&[("a", "1"), ("a", "2")]), None);
        assert_eq!(
            label_key(&[("b", "2"), ("a", "1")]).as_deref(),
            Some("a=\"1\",b=\"2\"")
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "invalid metric or label name")]
    fn invalid_names_panic_in_debug_builds() {
        Metrics::new().inc("bad-name", &[]);
    }

    #[test]
    fn response_has_the_exposition_content_type() {
        let m = Metrics::new();
        m.set("g", &[], 7);
        let r = m.response();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.content_type, PROMETHEUS_CONTENT_TYPE);
        assert_eq!(&r.body[..], b"# TYPE g gauge\ng 7\n");
    }
}
