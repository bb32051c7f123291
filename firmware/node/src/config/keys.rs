//! Every key of the config by its dotted name, for error reports: a TOML
//! error names the key only when it is one of these (`toml_errors`), so a
//! stray line — a key pasted in by mistake — is never echoed.

pub const KEYS: &[&str] = &[
    "state_dir",
    "boxname",
    "role",
    "wireguard.private_key_file",
    "wireguard.wg_quick_config",
    "wireguard.backend",
    "mesh.subnet",
    "mesh.wireguard_port",
    "mesh.interface",
    "mesh.api_port",
    "mesh.reserved_subnets",
    "mesh.max_peers",
    "api.loopback",
    "api.listen",
    "api.admin_socket",
    "api.max_body_bytes",
    "hub.public_endpoint",
    "hub.enroll_listen",
    "hub.public_url",
    "hub.enroll_rate_burst",
    "hub.enroll_rate_per_minute",
    "enroll.search_paths",
    "enroll.kernel_cmdline",
    "enroll.retry_initial_secs",
    "enroll.retry_max_secs",
    "enroll.directory_pull_secs",
    "enroll.hub_api_url",
    "enroll.config_volume_label",
    "enroll.config_volume_mount",
    "firewall.enabled",
    "firewall.table",
    "firewall.mesh_open_ports",
    "relay.enabled",
    "relay.listen",
    "relay.port_range",
    "relay.max_kbit_per_pair",
    "relay.idle_secs",
    "update.root_device_file",
    "update.boot_dir",
    "update.release_file",
    "update.release_keys",
    "update.policy",
    "update.window",
    "update.max_bundle_bytes",
    "update.fetch_from",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../../../docs/config.md");
        for key in KEYS {
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "docs/config.md has no row for {key}"
            );
        }
    }
}
