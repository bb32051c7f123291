//! The hub's enrolment URL as nodes are told it (`[hub] public_url`, the
//! `hub_url` of enroll.toml): checked where it is written and where it is
//! read, so a hub never hands out, and a node never waits forever on, an
//! address nobody can reach. The problems name no part of the URL: the
//! callers say which key was wrong, and an enroll.toml error must never
//! echo a value (it may be the token pasted into the wrong line).

use std::net::IpAddr;

use http::Uri;

/// Why a hub URL is unusable. The text names the rule, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HubUrlProblem {
    #[error("not a URL (expected http://host:port)")]
    NotAUrl,
    #[error("must start with http:// (the enrolment API is plain HTTP; what travels is signed)")]
    NotHttp,
    #[error("has no host")]
    NoHost,
    #[error(
        "names a wildcard address (0.0.0.0 or ::), which is where a hub listens, not where a node can reach it"
    )]
    Wildcard,
    #[error("has an invalid port (1-65535)")]
    BadPort,
    #[error("must not carry user info, a query or a fragment")]
    Extra,
}

/// `http://host[:port][/path]`, host a DNS name, an IPv4 address or a
/// bracketed IPv6 address, but not a wildcard address.
pub fn check(url: &str) -> Result<(), HubUrlProblem> {
    let uri: Uri = url.parse().map_err(|_| HubUrlProblem::NotAUrl)?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return Err(HubUrlProblem::NotHttp),
        None => return Err(HubUrlProblem::NotAUrl),
    }
    let authority = uri.authority().ok_or(HubUrlProblem::NoHost)?;
    if authority.as_str().contains('@') || uri.query().is_some() || url.contains('#') {
        return Err(HubUrlProblem::Extra);
    }
    let host = authority.host();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.is_empty() {
        return Err(HubUrlProblem::NoHost);
    }
    if bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
        return Err(HubUrlProblem::Wildcard);
    }
    // What follows the host is empty or `:port` (the API client's rule).
    match &authority.as_str()[host.len()..] {
        "" => Ok(()),
        rest => match rest.strip_prefix(':').map(str::parse::<u16>) {
            Some(Ok(port)) if port != 0 => Ok(()),
            _ => Err(HubUrlProblem::BadPort),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_urls_pass() {
        for url in [
            "http://hub.example.net:8799",
            "http://10.0.2.2:8799",
            "http://[2001:db8::1]:8799",
            "http://hub",
            "http://hub:8799/",
            "http://proxy.example.net/gondwana",
        ] {
            assert_eq!(check(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn unusable_urls_are_refused_by_kind() {
        for (url, problem) in [
            ("not a url", HubUrlProblem::NotAUrl),
            ("", HubUrlProblem::NotAUrl),
            ("hub.example.net:8799", HubUrlProblem::NotAUrl),
            ("https://hub:8799", HubUrlProblem::NotHttp),
            ("ftp://hub:8799", HubUrlProblem::NotHttp),
            ("http://0.0.0.0:8799", HubUrlProblem::Wildcard),
            ("http://[::]:8799", HubUrlProblem::Wildcard),
            ("http://hub:0", HubUrlProblem::BadPort),
            ("http://hub:99999", HubUrlProblem::BadPort),
            ("http://hub:80x", HubUrlProblem::BadPort),
            ("http://u:p@hub:8799", HubUrlProblem::Extra),
            ("http://hub:8799/?x=1", HubUrlProblem::Extra),
            ("http://HUB-ADDRESS:PORT", HubUrlProblem::BadPort),
        ] {
            assert_eq!(check(url), Err(problem), "{url:?}");
        }
    }
}
