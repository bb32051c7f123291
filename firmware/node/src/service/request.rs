//! The typed admin protocol: every use case the CLI can ask of a box, as
//! one value. The CLI runs it in-process (`service::local`) or sends it to
//! the running daemon over the root-only admin socket, where it travels as
//! `METHOD /admin/…` with the variant's body as JSON (docs/api.md, "Admin
//! socket"); both sides use these types.

use std::net::Ipv4Addr;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::boot::enroll_file::EnrollFile;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    pub uses: u32,
    /// Lifetime; absent: [`DEFAULT_TOKEN_TTL_SECS`] unless `never_expires`.
    pub ttl_secs: Option<u64>,
    /// No expiry at all (`--ttl never`); exclusive with `ttl_secs`.
    #[serde(default)]
    pub never_expires: bool,
    pub boxname: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub replace: bool,
}

/// A token's lifetime when none is asked for: 7 days.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 7 * 86_400;
/// The longest lifetime a token may be given (10 years); past it, an
/// operator means `--ttl never`.
pub const MAX_TOKEN_TTL_SECS: u64 = 3_650 * 86_400;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenId {
    pub id: String,
}

/// A node by node id, or by the boxname of its live record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRef {
    pub who: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRevoke {
    pub who: String,
    #[serde(default = "default_reason")]
    pub reason: String,
}

fn default_reason() -> String {
    "revoked by the operator".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    #[serde(default)]
    pub signing: bool,
    #[serde(default)]
    pub wireguard: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub ip: Ipv4Addr,
    pub port: u32,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Hub only: grant on this node (boxname or mesh address) instead.
    #[serde(default)]
    pub node: Option<String>,
}

/// A directory bundle (docs/protocol.md), base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub bundle_base64: String,
}

/// An update bundle on this box's filesystem, by absolute path (the
/// daemon reads it itself: bundles are far larger than a request body).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateInstall {
    pub bundle: std::path::PathBuf,
}

/// `service offer`: what to lend (docs/services.md). Checked by the box
/// that signs it: a DNS-label name, a port 1–65535, `tcp` or `udp`, an
/// approval mode `auto`, `manual` or `allow:<boxnames or tags>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferSpec {
    pub name: String,
    pub port: u32,
    #[serde(default = "default_proto")]
    pub proto: String,
    pub approve: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub max_duration_secs: Option<u64>,
}

fn default_proto() -> String {
    "tcp".into()
}

/// One of this box's services, by name (`service withdraw`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceName {
    pub name: String,
}

/// An offer of the mesh as `NAME@BOXNAME` (`service show`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAt {
    pub service: String,
}

/// `service subscribe|unsubscribe NAME@BOXNAME` (docs/services.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// `NAME@BOXNAME`: the service and its provider.
    pub service: String,
    /// How long each grant lasts before the consumer renews it; absent:
    /// the offer's maximum, at most [`DEFAULT_SUBSCRIPTION_SECS`].
    #[serde(default)]
    pub duration_secs: Option<u64>,
}

/// A subscription's grant when none is asked for: one hour, renewed.
pub const DEFAULT_SUBSCRIPTION_SECS: u64 = 3_600;

/// `service approve|deny NAME CONSUMER` on the provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// One of this box's services.
    pub name: String,
    /// The consumer: boxname, node id or mesh address.
    pub consumer: String,
    /// `deny` only: told to the consumer in the signed decision.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `update trust`: a release-key rotation record, a file on the box.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTrust {
    pub record: std::path::PathBuf,
}

/// `update publish`: a bundle and its release record, both files on the box.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePublish {
    pub bundle: std::path::PathBuf,
    pub record: std::path::PathBuf,
}

#[derive(Debug, Clone)]
pub enum Request {
    Status,
    Identity,
    IdentityRotate(Rotate),
    /// The identity log as a bundle (`identity export`).
    IdentityExport,
    /// Load and check the stored identity (`identity verify`).
    IdentityVerify,
    Audit,
    AuditVerify,
    TokenCreate(TokenCreate),
    TokenList,
    TokenRevoke(TokenId),
    NodeList,
    NodeShow(NodeRef),
    NodeRevoke(NodeRevoke),
    Directory,
    DirectoryVerify,
    DirectoryExport,
    DirectoryImport(Bundle),
    GrantAdd(GrantRequest),
    GrantDel(GrantRequest),
    GrantList,
    Enroll(EnrollFile),
    UpdateStatus,
    UpdateInstall(UpdateInstall),
    ServiceOffer(OfferSpec),
    ServiceWithdraw(ServiceName),
    ServiceList,
    ServiceShow(ServiceAt),
    ServiceSubscribe(Subscribe),
    ServiceUnsubscribe(Subscribe),
    ServiceRequests,
    ServiceApprove(Verdict),
    ServiceDeny(Verdict),
    UpdatePublish(UpdatePublish),
    UpdateTrust(UpdateTrust),
    UpdateCancel,
}

/// Every admin route: the method and path a request travels as.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/status"),
    ("GET", "/admin/identity"),
    ("POST", "/admin/identity/rotate"),
    ("GET", "/admin/identity/export"),
    ("GET", "/admin/identity/verify"),
    ("GET", "/admin/audit"),
    ("GET", "/admin/audit/verify"),
    ("POST", "/admin/token/create"),
    ("GET", "/admin/tokens"),
    ("POST", "/admin/token/revoke"),
    ("GET", "/admin/nodes"),
    ("POST", "/admin/node/show"),
    ("POST", "/admin/node/revoke"),
    ("GET", "/admin/directory"),
    ("GET", "/admin/directory/verify"),
    ("GET", "/admin/directory/export"),
    ("POST", "/admin/directory/import"),
    ("POST", "/admin/grant/add"),
    ("POST", "/admin/grant/del"),
    ("GET", "/admin/grants"),
    ("POST", "/admin/enroll"),
    ("GET", "/admin/update/status"),
    ("POST", "/admin/update/install"),
    ("POST", "/admin/service/offer"),
    ("POST", "/admin/service/withdraw"),
    ("GET", "/admin/services"),
    ("POST", "/admin/service/show"),
    ("POST", "/admin/service/subscribe"),
    ("POST", "/admin/service/unsubscribe"),
    ("GET", "/admin/service/requests"),
    ("POST", "/admin/service/approve"),
    ("POST", "/admin/service/deny"),
    ("POST", "/admin/update/publish"),
    ("POST", "/admin/update/trust"),
    ("POST", "/admin/update/cancel"),
];

/// Why an HTTP request is not a [`Request`].
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    /// The path exists with other methods: answer 405 with `Allow`.
    MethodNotAllowed(String),
    BadBody(String),
}

impl Request {
    /// `(method, path)` on the admin socket.
    pub fn route(&self) -> (&'static str, &'static str) {
        ROUTES[self.index()]
    }

    fn index(&self) -> usize {
        match self {
            Request::Status => 0,
            Request::Identity => 1,
            Request::IdentityRotate(_) => 2,
            Request::IdentityExport => 3,
            Request::IdentityVerify => 4,
            Request::Audit => 5,
            Request::AuditVerify => 6,
            Request::TokenCreate(_) => 7,
            Request::TokenList => 8,
            Request::TokenRevoke(_) => 9,
            Request::NodeList => 10,
            Request::NodeShow(_) => 11,
            Request::NodeRevoke(_) => 12,
            Request::Directory => 13,
            Request::DirectoryVerify => 14,
            Request::DirectoryExport => 15,
            Request::DirectoryImport(_) => 16,
            Request::GrantAdd(_) => 17,
            Request::GrantDel(_) => 18,
            Request::GrantList => 19,
            Request::Enroll(_) => 20,
            Request::UpdateStatus => 21,
            Request::UpdateInstall(_) => 22,
            Request::ServiceOffer(_) => 23,
            Request::ServiceWithdraw(_) => 24,
            Request::ServiceList => 25,
            Request::ServiceShow(_) => 26,
            Request::ServiceSubscribe(_) => 27,
            Request::ServiceUnsubscribe(_) => 28,
            Request::ServiceRequests => 29,
            Request::ServiceApprove(_) => 30,
            Request::ServiceDeny(_) => 31,
            Request::UpdatePublish(_) => 32,
            Request::UpdateTrust(_) => 33,
            Request::UpdateCancel => 34,
        }
    }

    /// The JSON body sent with the request (`None`: no body).
    pub fn body(&self) -> serde_json::Result<Option<Value>> {
        Ok(Some(match self {
            Request::IdentityRotate(r) => serde_json::to_value(r)?,
            Request::TokenCreate(r) => serde_json::to_value(r)?,
            Request::TokenRevoke(r) => serde_json::to_value(r)?,
            Request::NodeShow(r) => serde_json::to_value(r)?,
            Request::NodeRevoke(r) => serde_json::to_value(r)?,
            Request::DirectoryImport(r) => serde_json::to_value(r)?,
            Request::GrantAdd(r) | Request::GrantDel(r) => serde_json::to_value(r)?,
            Request::Enroll(r) => serde_json::to_value(r)?,
            Request::UpdateInstall(r) => serde_json::to_value(r)?,
            Request::ServiceOffer(r) => serde_json::to_value(r)?,
            Request::ServiceWithdraw(r) => serde_json::to_value(r)?,
            Request::ServiceShow(r) => serde_json::to_value(r)?,
            Request::ServiceSubscribe(r) | Request::ServiceUnsubscribe(r) => {
                serde_json::to_value(r)?
            }
            Request::ServiceApprove(r) | Request::ServiceDeny(r) => serde_json::to_value(r)?,
            Request::UpdatePublish(r) => serde_json::to_value(r)?,
            Request::UpdateTrust(r) => serde_json::to_value(r)?,
            _ => return Ok(None),
        }))
    }

    /// Whether running it in-process writes the store (how it opens it).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Request::IdentityRotate(_)
                | Request::TokenCreate(_)
                | Request::TokenRevoke(_)
                | Request::NodeRevoke(_)
                | Request::DirectoryImport(_)
                | Request::GrantAdd(_)
                | Request::GrantDel(_)
                | Request::Enroll(_)
                | Request::ServiceOffer(_)
                | Request::ServiceWithdraw(_)
                | Request::UpdatePublish(_)
                | Request::UpdateTrust(_)
        )
    }

    /// The daemon's side: `METHOD path` and a JSON body (empty = `{}`).
    pub fn from_http(method: &Method, path: &str, body: &[u8]) -> Result<Request, RouteError> {
        let path = normalise(path);
        let Some(index) = ROUTES
            .iter()
            .position(|(m, p)| *p == path && *m == method.as_str())
        else {
            let allow: Vec<&str> = ROUTES
                .iter()
                .filter(|(_, p)| *p == path)
                .map(|(m, _)| *m)
                .collect();
            return Err(if allow.is_empty() {
                RouteError::NotFound
            } else {
                RouteError::MethodNotAllowed(allow.join(", "))
            });
        };
        let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            body
        };
        fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, RouteError> {
            serde_json::from_slice(body).map_err(|e| RouteError::BadBody(format!("JSON body: {e}")))
        }
        Ok(match index {
            0 => Request::Status,
            1 => Request::Identity,
            2 => Request::IdentityRotate(parse(body)?),
            3 => Request::IdentityExport,
            4 => Request::IdentityVerify,
            5 => Request::Audit,
            6 => Request::AuditVerify,
            7 => Request::TokenCreate(parse(body)?),
            8 => Request::TokenList,
            9 => Request::TokenRevoke(parse(body)?),
            10 => Request::NodeList,
            11 => Request::NodeShow(parse(body)?),
            12 => Request::NodeRevoke(parse(body)?),
            13 => Request::Directory,
            14 => Request::DirectoryVerify,
            15 => Request::DirectoryExport,
            16 => Request::DirectoryImport(parse(body)?),
            17 => Request::GrantAdd(parse(body)?),
            18 => Request::GrantDel(parse(body)?),
            19 => Request::GrantList,
            20 => Request::Enroll(parse(body)?),
            21 => Request::UpdateStatus,
            22 => Request::UpdateInstall(parse(body)?),
            23 => Request::ServiceOffer(parse(body)?),
            24 => Request::ServiceWithdraw(parse(body)?),
            25 => Request::ServiceList,
            26 => Request::ServiceShow(parse(body)?),
            27 => Request::ServiceSubscribe(parse(body)?),
            28 => Request::ServiceUnsubscribe(parse(body)?),
            29 => Request::ServiceRequests,
            30 => Request::ServiceApprove(parse(body)?),
            31 => Request::ServiceDeny(parse(body)?),
            32 => Request::UpdatePublish(parse(body)?),
            33 => Request::UpdateTrust(parse(body)?),
            _ => Request::UpdateCancel,
        })
    }
}

/// `/admin//status/` is `/admin/status`, as on the public API.
fn normalise(path: &str) -> String {
    let mut out = String::new();
    for segment in crate::api::segments(path) {
        out.push('/');
        out.push_str(segment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_request() -> Vec<Request> {
        let grant = GrantRequest {
            ip: Ipv4Addr::new(10, 0, 0, 2),
            port: 80,
            timeout_secs: None,
            node: None,
        };
        vec![
            Request::Status,
            Request::Identity,
            Request::IdentityRotate(Rotate {
                signing: false,
                wireguard: true,
            }),
            Request::IdentityExport,
            Request::IdentityVerify,
            Request::Audit,
            Request::AuditVerify,
            Request::TokenCreate(TokenCreate {
                uses: 1,
                ..TokenCreate::default()
            }),
            Request::TokenList,
            Request::TokenRevoke(TokenId { id: "t".into() }),
            Request::NodeList,
            Request::NodeShow(NodeRef { who: "n".into() }),
            Request::NodeRevoke(NodeRevoke {
                who: "n".into(),
                reason: "r".into(),
            }),
            Request::Directory,
            Request::DirectoryVerify,
            Request::DirectoryExport,
            Request::DirectoryImport(Bundle {
                bundle_base64: String::new(),
            }),
            Request::GrantAdd(grant.clone()),
            Request::GrantDel(grant),
            Request::GrantList,
            Request::Enroll(EnrollFile {
                hub_url: "http://h:1".into(),
                hub_key: "00".into(),
                token: "t".into(),
                boxname: None,
            }),
            Request::UpdateStatus,
            Request::UpdateInstall(UpdateInstall {
                bundle: "/tmp/b.bundle".into(),
            }),
            Request::ServiceOffer(OfferSpec {
                name: "web".into(),
                port: 8080,
                proto: "tcp".into(),
                approve: "auto".into(),
                description: None,
                max_duration_secs: None,
            }),
            Request::ServiceWithdraw(ServiceName { name: "web".into() }),
            Request::ServiceList,
            Request::ServiceShow(ServiceAt {
                service: "web@kitchen".into(),
            }),
            Request::ServiceSubscribe(Subscribe {
                service: "web@kitchen".into(),
                duration_secs: Some(60),
            }),
            Request::ServiceUnsubscribe(Subscribe {
                service: "web@kitchen".into(),
                duration_secs: None,
            }),
            Request::ServiceRequests,
            Request::ServiceApprove(Verdict {
                name: "web".into(),
                consumer: "hall".into(),
                reason: None,
            }),
            Request::ServiceDeny(Verdict {
                name: "web".into(),
                consumer: "hall".into(),
                reason: Some("no".into()),
            }),
            Request::UpdatePublish(UpdatePublish {
                bundle: "/tmp/b.bundle".into(),
                record: "/tmp/b.bundle.release".into(),
            }),
            Request::UpdateTrust(UpdateTrust {
                record: "/tmp/1.rotation".into(),
            }),
            Request::UpdateCancel,
        ]
    }

    #[test]
    fn every_request_survives_the_wire() {
        let all = every_request();
        assert_eq!(all.len(), ROUTES.len());
        for (i, request) in all.iter().enumerate() {
            assert_eq!(request.index(), i);
            let (method, path) = request.route();
            let body = request.body().unwrap().map(|v| v.to_string());
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let back = Request::from_http(&method, path, body.as_deref().unwrap_or("").as_bytes())
                .unwrap_or_else(|e| panic!("{path}: {e:?}"));
            assert_eq!(back.index(), i, "{path}");
        }
    }

    #[test]
    fn wrong_method_names_the_allowed_ones() {
        assert_eq!(
            Request::from_http(&Method::POST, "/admin/status", b"").unwrap_err(),
            RouteError::MethodNotAllowed("GET".into())
        );
        assert_eq!(
            Request::from_http(&Method::GET, "/admin/nope", b"").unwrap_err(),
            RouteError::NotFound
        );
        assert!(matches!(
            Request::from_http(&Method::POST, "/admin/token/revoke", b"{\"idd\":1}"),
            Err(RouteError::BadBody(_))
        ));
        assert!(matches!(
            Request::from_http(&Method::GET, "//admin//status/", b""),
            Ok(Request::Status)
        ));
    }
}
