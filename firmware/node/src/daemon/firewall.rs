//! The daemon's firewall: started once with the stored grants, held by the
//! app state, used by the admin socket (`grant add|del|list`), by hub-signed
//! commands (daemon/grants.rs) and by the data plane (the granted subnet).

use serde_json::{Value, json};

use crate::clock::now_unix;
use crate::config::Config;
use crate::daemon::nonces::Nonces;
use crate::net::firewall::Firewall;
use crate::service::ServiceError;
use crate::service::grants::{GrantChangeError, mesh_subnet, start_firewall};
use crate::store::StateStore;

pub struct Grants {
    /// `None` when `[firewall] enabled = false`.
    pub firewall: Option<Firewall>,
    table: String,
    /// Nonces for hub-signed commands: stateless, single use.
    nonces: Nonces,
}

/// The mesh subnet the firewall guards: the hub-assigned one once enrolled,
/// else the configured one (a hub, or a node not enrolled yet).
impl Grants {
    /// Applies the table and the stored grants. Fails when the firewall
    /// is enabled but nf_tables cannot be programmed: a box must not run
    /// believing its mesh is filtered when it is not.
    pub fn start(config: &Config, store: &StateStore) -> Result<Grants, GrantChangeError> {
        let subnet = mesh_subnet(config, store);
        let firewall = start_firewall(config, subnet, store, now_unix())?;
        if let Some(fw) = &firewall {
            info!(
                "firewall: table inet {} on {} ({})",
                fw.plan().table,
                fw.plan().interface,
                fw.plan().subnet
            );
        }
        Ok(Grants {
            firewall,
            table: config.firewall.table.clone(),
            nonces: Nonces::new(gondwana_core::nonce::Purpose::GrantCommand),
        })
    }

    /// No firewall (route tests of other parts).
    #[cfg(test)]
    pub fn disabled() -> Grants {
        Grants {
            firewall: None,
            table: String::new(),
            nonces: Nonces::new(gondwana_core::nonce::Purpose::GrantCommand),
        }
    }

    pub fn status_json(&self) -> Value {
        match &self.firewall {
            Some(fw) => json!({
                "enabled": true, "table": format!("inet {}", self.table),
                "interface": fw.plan().interface.as_str(), "subnet": fw.plan().subnet.to_string(),
            }),
            None => json!({"enabled": false}),
        }
    }

    /// Nonces for hub-signed grant commands (daemon/grants.rs).
    pub fn nonces(&self) -> &Nonces {
        &self.nonces
    }

    /// Grant-command nonces spent and still remembered (a metric).
    pub fn nonces_spent(&self) -> usize {
        self.nonces.used_len()
    }

    /// The firewall, or the refusal every caller gives when it is off.
    pub fn require(&self) -> crate::service::Result<&Firewall> {
        self.firewall.as_ref().ok_or_else(|| {
            ServiceError::Conflict("the firewall is disabled ([firewall] enabled = false)".into())
        })
    }
}
