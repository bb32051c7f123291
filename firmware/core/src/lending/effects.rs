//! What the lending machines ask their driver to do: firewall changes and
//! audit records. The driver applies them in order.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::audit::Field;
use crate::lending_records::{Protocol, ServiceName};
use crate::node_id::NodeId;

/// One opening in the provider's firewall: exactly one host address (a
/// /32, by its type: never a subnet), one protocol, one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LendingGrant {
    pub ip: Ipv4Addr,
    pub protocol: Protocol,
    pub port: u16,
}

/// A firewall change for the driver (the grant's origin is the
/// subscription of `consumer` to `name`, for the grant listing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantChange {
    /// Add the grant, or renew it: its kernel timeout becomes
    /// `timeout_secs` from now.
    Add {
        consumer: NodeId,
        name: ServiceName,
        grant: LendingGrant,
        timeout_secs: u64,
    },
    /// Remove the grant (it may already have timed out in the kernel).
    Remove {
        consumer: NodeId,
        name: ServiceName,
        grant: LendingGrant,
    },
}

/// Audit record kinds the lending machines produce (docs/audit.md).
pub mod audit_kind {
    pub const REQUEST: &str = "lending.request";
    pub const DECISION: &str = "lending.decision";
    pub const GRANT_ADD: &str = "lending.grant-add";
    pub const GRANT_REMOVE: &str = "lending.grant-remove";
}

/// One audit record to append on this box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub kind: &'static str,
    pub fields: Vec<Field>,
}

impl AuditEvent {
    pub(crate) fn new(kind: &'static str, consumer: &NodeId, name: &ServiceName) -> AuditEvent {
        AuditEvent {
            kind,
            fields: vec![
                Field::text("consumer", consumer.as_str()),
                Field::text("service", name.as_str()),
            ],
        }
    }

    pub(crate) fn with(mut self, field: Field) -> AuditEvent {
        self.fields.push(field);
        self
    }

    pub(crate) fn grant(kind: &'static str, change: &GrantChange) -> AuditEvent {
        let (consumer, name, grant) = match change {
            GrantChange::Add {
                consumer,
                name,
                grant,
                ..
            }
            | GrantChange::Remove {
                consumer,
                name,
                grant,
            } => (consumer, name, grant),
        };
        let event = AuditEvent::new(kind, consumer, name)
            .with(Field::text("ip", &grant.ip.to_string()))
            .with(Field::text("protocol", grant.protocol.as_str()))
            .with(Field::uint("port", u64::from(grant.port)));
        match change {
            GrantChange::Add { timeout_secs, .. } => {
                event.with(Field::uint("timeout_secs", *timeout_secs))
            }
            GrantChange::Remove { .. } => event,
        }
    }
}
