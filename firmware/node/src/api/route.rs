//! Routing helpers: routes match on `(method, segments)`. Pure text
//! functions: the typed errors of a bad parameter live in `message`.

use std::borrow::Cow;

/// The path's segments, without empty ones: `/v1/status`, `/v1/status/` and
/// `//v1//status` all give `["v1", "status"]`. Segments are not
/// percent-decoded: routes match literal ASCII names, and a segment that
/// carries data (an id) is decoded by the route that reads it.
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The first value of `key` in an `application/x-www-form-urlencoded` query
/// (`a=1&b=x%20y`), percent- and `+`-decoded; keys are compared decoded.
/// Borrowed when the raw value needed no decoding. A key without `=` has the
/// value `""`. Invalid UTF-8 after decoding becomes U+FFFD, so such a value
/// fails whatever parse the route applies rather than matching by accident.
pub fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<Cow<'a, str>> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_skip_empty_parts() {
        assert_eq!(segments("/"), Vec::<&str>::new());
        assert_eq!(segments(""), Vec::<&str>::new());
        assert_eq!(segments("/v1/status"), ["v1", "status"]);
        assert_eq!(segments("/v1/status/"), ["v1", "status"]);
        assert_eq!(segments("//v1//status"), ["v1", "status"]);
        assert_eq!(segments("/v1/peers/gw%3Aabc"), ["v1", "peers", "gw%3Aabc"]);
    }

    #[test]
    fn query_param_decodes() {
        let q = Some("after=12&name=a%20b+c&flag&empty=&dup=1&dup=2&k%65y=v&pct=100%25");
        assert_eq!(query_param(q, "after").as_deref(), Some("12"));
        assert!(matches!(query_param(q, "after"), Some(Cow::Borrowed("12"))));
        assert_eq!(query_param(q, "name").as_deref(), Some("a b c"));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "empty").as_deref(), Some(""));
        assert_eq!(query_param(q, "dup").as_deref(), Some("1"));
        assert_eq!(query_param(q, "key").as_deref(), Some("v"));
        assert_eq!(query_param(q, "pct").as_deref(), Some("100%"));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param(None, "after"), None);
        assert_eq!(query_param(Some(""), "after"), None);
    }

    #[test]
    fn query_param_malformed_escapes() {
        // A lone or truncated `%` stays literal (WHATWG form decoding);
        // invalid UTF-8 becomes U+FFFD.
        assert_eq!(query_param(Some("a=%"), "a").as_deref(), Some("%"));
        assert_eq!(query_param(Some("a=%4"), "a").as_deref(), Some("%4"));
        assert_eq!(query_param(Some("a=%zz"), "a").as_deref(), Some("%zz"));
        assert_eq!(query_param(Some("a=%FF"), "a").as_deref(), Some("\u{FFFD}"));
    }
}
