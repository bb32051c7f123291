//! The ruleset, as data: what our table holds for a given mesh interface,
//! subnet and API port. No I/O; `netlink.rs` turns it into one batch.
//!
//! ```text
//! table inet gondwana {
//!   set grants { type ipv4_addr . inet_service; flags timeout; }
//!   set grants_udp { type ipv4_addr . inet_service; flags timeout; }
//!   chain input {
//!     type filter hook input priority filter; policy accept;
//!     ip daddr 10.10.0.0/24 iifname != "wg-mesh" iifname != "lo" counter drop
//!     iifname "wg-mesh" ct state established,related accept
//!     iifname "wg-mesh" ip saddr 10.10.0.0/24 icmp type echo-request accept
//!     iifname "wg-mesh" ip saddr 10.10.0.0/24 tcp dport 8798 accept
//!     iifname "wg-mesh" ip saddr 10.10.0.0/24 tcp dport 22 accept   (one per firewall.mesh_open_ports)
//!     iifname "wg-mesh" ip saddr . tcp dport @grants accept
//!     iifname "wg-mesh" ip saddr . udp dport @grants_udp accept
//!     iifname "wg-mesh" counter drop
//!   }
//!   chain forward {
//!     type filter hook forward priority filter; policy accept;
//!     iifname "wg-mesh" oifname "wg-mesh" counter drop
//!   }
//! }
//! ```

use std::net::Ipv4Addr;

use gondwana_core::InterfaceName;
use gondwana_core::lending::Protocol;
use gondwana_core::mesh::Ipv4Net;

use super::nfmsg::{
    CT_ESTABLISHED, CT_RELATED, CmpOp, Expr, NF_ACCEPT, NF_DROP, NFPROTO_IPV4, NFT_META_IIFNAME,
    NFT_META_L4PROTO, NFT_META_NFPROTO, NFT_META_OIFNAME, PayloadBase, REG_1, REG32_01,
};

pub const INPUT_CHAIN: &str = "input";
pub const FORWARD_CHAIN: &str = "forward";
pub const GRANT_SET: &str = "grants";
/// The set's id inside the batch that creates it (rules and elements in
/// the same batch refer to it by this id as well as by name).
pub const GRANT_SET_ID: u32 = 1;
/// UDP grants: a set of their own, so a TCP grant never opens the same
/// UDP port (and the other way round).
pub const UDP_GRANT_SET: &str = "grants_udp";
pub const UDP_GRANT_SET_ID: u32 = 2;

/// The set (name, id in the creating batch) holding grants of `proto`.
pub fn grant_set(proto: Protocol) -> (&'static str, u32) {
    match proto {
        Protocol::Tcp => (GRANT_SET, GRANT_SET_ID),
        Protocol::Udp => (UDP_GRANT_SET, UDP_GRANT_SET_ID),
    }
}

/// `priority filter` (0). nf_tables runs every base chain on a hook and a
/// packet must pass all of them: our drop is final whatever an operator's
/// tables say, and our accept never overrides an operator's drop. So the
/// number only orders us among equals; 0 is what operators expect.
pub const FILTER_PRIORITY: i32 = 0;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const ICMP_ECHO_REQUEST: u8 = 8;
/// Source and destination address offsets in the IPv4 header.
const SADDR_OFFSET: u32 = 12;
const DADDR_OFFSET: u32 = 16;
/// The loopback interface: the box talking to its own mesh address.
const LOOPBACK: &str = "lo";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
    pub interface: InterfaceName,
    pub subnet: Ipv4Net,
    pub api_port: u16,
    /// Ports open to the whole subnet besides the API (`firewall.mesh_open_ports`).
    pub open_ports: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "firewall table name {0:?}: 1-32 characters, letters, digits, '_' or '-', starting with a letter"
    )]
    TableName(String),
    #[error("API port must be 1-65535")]
    ApiPort,
}

impl Ruleset {
    pub fn new(
        table: &str,
        interface: &InterfaceName,
        subnet: Ipv4Net,
        api_port: u16,
    ) -> Result<Ruleset, PlanError> {
        check_table_name(table)?;
        if api_port == 0 {
            return Err(PlanError::ApiPort);
        }
        Ok(Ruleset {
            table: table.into(),
            interface: interface.clone(),
            subnet: subnet.trunc(),
            api_port,
            open_ports: Vec::new(),
        })
    }

    /// The same table with `ports` open to the whole mesh subnet too.
    pub fn with_open_ports(mut self, ports: &[u16]) -> Ruleset {
        self.open_ports = ports.to_vec();
        self
    }

    /// The input chain's rules, in order: the off-mesh guard, then the
    /// mesh interface's own rules.
    pub fn input_rules(&self) -> Vec<Vec<Expr>> {
        let mut rules = vec![self.off_mesh_guard()];
        rules.extend(self.mesh_rules());
        rules
    }

    /// The forward chain's one rule, `iifname "<mesh>" oifname "<mesh>"
    /// counter drop`: this box never routes plaintext from one mesh peer
    /// to another (docs/paths.md: traffic between two boxes is encrypted
    /// and decrypted by them only; the relay carries their ciphertext).
    /// Everything else forwarded is not ours to judge (policy accept).
    pub fn forward_rules(&self) -> Vec<Vec<Expr>> {
        let name = padded_name(self.interface.as_str());
        vec![vec![
            iifname(),
            eq(name.clone()),
            Expr::Meta {
                key: NFT_META_OIFNAME,
                dreg: REG_1,
            },
            eq(name),
            Expr::Counter,
            Expr::Verdict(NF_DROP),
        ]]
    }

    /// `ip daddr <subnet> iifname != "<mesh>" iifname != "lo" counter drop`:
    /// a mesh address is reached through the mesh (or from the box itself),
    /// never by a LAN host that routes the mesh subnet via this box's LAN
    /// address. Addresses outside the subnet (an operator's `api.listen`)
    /// are not this rule's business.
    fn off_mesh_guard(&self) -> Vec<Expr> {
        [
            self.in_subnet(DADDR_OFFSET),
            vec![
                iifname(),
                neq(padded_name(self.interface.as_str())),
                iifname(),
                neq(padded_name(LOOPBACK)),
                Expr::Counter,
                Expr::Verdict(NF_DROP),
            ],
        ]
        .concat()
    }

    /// The rules for what arrives on the mesh interface, in order.
    fn mesh_rules(&self) -> Vec<Vec<Expr>> {
        let established = [
            Expr::CtState { dreg: REG_1 },
            Expr::Bitwise {
                reg: REG_1,
                mask: (CT_ESTABLISHED | CT_RELATED).to_ne_bytes().to_vec(),
                xor: vec![0; 4],
            },
            Expr::Cmp {
                sreg: REG_1,
                op: CmpOp::Neq,
                data: vec![0; 4],
            },
            accept(),
        ];
        let ping = [
            self.source_in_subnet(),
            l4proto(IPPROTO_ICMP),
            vec![
                Expr::Payload {
                    base: PayloadBase::Transport,
                    offset: 0,
                    len: 1,
                    dreg: REG_1,
                },
                eq(vec![ICMP_ECHO_REQUEST]),
                accept(),
            ],
        ]
        .concat();
        let open_to_mesh = std::iter::once(self.api_port)
            .chain(self.open_ports.iter().copied())
            .map(|port| {
                [
                    self.source_in_subnet(),
                    l4proto(IPPROTO_TCP),
                    vec![dport(REG_1), eq(port.to_be_bytes().to_vec()), accept()],
                ]
                .concat()
            });
        // `ip saddr . tcp|udp dport @grants|@grants_udp accept`: the
        // destination port sits at the same offset in both headers.
        let grants = [Protocol::Tcp, Protocol::Udp].map(|proto| {
            let (set, set_id) = grant_set(proto);
            let ipproto = match proto {
                Protocol::Tcp => IPPROTO_TCP,
                Protocol::Udp => IPPROTO_UDP,
            };
            [
                nfproto_ipv4(),
                l4proto(ipproto),
                vec![
                    saddr(),
                    dport(REG32_01),
                    Expr::Lookup {
                        set: set.into(),
                        set_id,
                        sreg: REG_1,
                    },
                    accept(),
                ],
            ]
            .concat()
        });
        let drop = vec![Expr::Counter, Expr::Verdict(NF_DROP)];
        [established.to_vec(), ping]
            .into_iter()
            .chain(open_to_mesh)
            .chain(grants)
            .chain([drop])
            .map(|body| [self.on_mesh(), body].concat())
            .collect()
    }

    /// `iifname "<mesh>"`.
    fn on_mesh(&self) -> Vec<Expr> {
        vec![iifname(), eq(padded_name(self.interface.as_str()))]
    }

    /// `ip saddr <subnet>`.
    fn source_in_subnet(&self) -> Vec<Expr> {
        self.in_subnet(SADDR_OFFSET)
    }

    /// `ip saddr|daddr <subnet>` for the address at `offset` of the IPv4
    /// header.
    fn in_subnet(&self, offset: u32) -> Vec<Expr> {
        let mut v = nfproto_ipv4();
        v.push(Expr::Payload {
            base: PayloadBase::Network,
            offset,
            len: 4,
            dreg: REG_1,
        });
        if self.subnet.prefix_len() < 32 {
            v.push(Expr::Bitwise {
                reg: REG_1,
                mask: self.subnet.netmask().octets().to_vec(),
                xor: vec![0; 4],
            });
        }
        v.push(eq(self.subnet.network().octets().to_vec()));
        v
    }
}

/// The config's check ([`crate::config::check_table_name`]), for tables
/// named elsewhere (the benchmark's).
pub fn check_table_name(name: &str) -> Result<(), PlanError> {
    crate::config::check_table_name(name).map_err(|_| PlanError::TableName(name.into()))
}

fn eq(data: Vec<u8>) -> Expr {
    Expr::Cmp {
        sreg: REG_1,
        op: CmpOp::Eq,
        data,
    }
}

fn neq(data: Vec<u8>) -> Expr {
    Expr::Cmp {
        sreg: REG_1,
        op: CmpOp::Neq,
        data,
    }
}

fn iifname() -> Expr {
    Expr::Meta {
        key: NFT_META_IIFNAME,
        dreg: REG_1,
    }
}

/// nft compares an interface name as the full 16-byte, NUL-padded field.
fn padded_name(name: &str) -> Vec<u8> {
    let mut padded = [0u8; 16];
    let n = name.len().min(15);
    padded[..n].copy_from_slice(&name.as_bytes()[..n]);
    padded.to_vec()
}

fn accept() -> Expr {
    Expr::Verdict(NF_ACCEPT)
}

fn nfproto_ipv4() -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: NFT_META_NFPROTO,
            dreg: REG_1,
        },
        eq(vec![NFPROTO_IPV4]),
    ]
}

fn l4proto(proto: u8) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: NFT_META_L4PROTO,
            dreg: REG_1,
        },
        eq(vec![proto]),
    ]
}

fn saddr() -> Expr {
    Expr::Payload {
        base: PayloadBase::Network,
        offset: SADDR_OFFSET,
        len: 4,
        dreg: REG_1,
    }
}

fn dport(dreg: u32) -> Expr {
    Expr::Payload {
        base: PayloadBase::Transport,
        offset: 2,
        len: 2,
        dreg,
    }
}

/// Milliseconds the kernel takes for a timeout of `secs` seconds.
pub fn timeout_ms(secs: u64) -> u64 {
    secs.saturating_mul(1000)
}

/// A grant's key back from the kernel's 8 bytes.
pub fn parse_grant_key(key: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let k: [u8; 8] = key.try_into().ok()?;
    Some((
        Ipv4Addr::new(k[0], k[1], k[2], k[3]),
        u16::from_be_bytes([k[4], k[5]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Ruleset {
        Ruleset::new(
            "gondwana",
            &InterfaceName::parse("wg-mesh").unwrap(),
            "10.10.0.0/24".parse().unwrap(),
            8798,
        )
        .unwrap()
    }

    #[test]
    fn the_first_rule_drops_mesh_addresses_off_the_mesh_and_loopback() {
        let guard = &plan().input_rules()[0];
        assert_eq!(
            guard,
            &vec![
                Expr::Meta {
                    key: NFT_META_NFPROTO,
                    dreg: REG_1
                },
                eq(vec![NFPROTO_IPV4]),
                Expr::Payload {
                    base: PayloadBase::Network,
                    offset: 16,
                    len: 4,
                    dreg: REG_1
                },
                Expr::Bitwise {
                    reg: REG_1,
                    mask: vec![255, 255, 255, 0],
                    xor: vec![0; 4]
                },
                eq(vec![10, 10, 0, 0]),
                iifname(),
                neq(b"wg-mesh\0\0\0\0\0\0\0\0\0".to_vec()),
                iifname(),
                neq(b"lo\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec()),
                Expr::Counter,
                Expr::Verdict(NF_DROP),
            ]
        );
        // A /32 "subnet" compares the whole address, no mask.
        let one = Ruleset::new(
            "t",
            &InterfaceName::parse("wg0").unwrap(),
            "10.9.8.7/32".parse().unwrap(),
            1,
        )
        .unwrap();
        let g = &one.input_rules()[0];
        assert!(!g.iter().any(|e| matches!(e, Expr::Bitwise { .. })));
        assert!(g.contains(&eq(vec![10, 9, 8, 7])));
    }

    #[test]
    fn every_other_rule_is_scoped_to_the_mesh_interface_and_ends_in_a_verdict() {
        let rules = plan().input_rules();
        assert_eq!(rules.len(), 7);
        for r in &rules[1..] {
            assert_eq!(r[0], iifname());
            assert!(
                matches!(&r[1], Expr::Cmp { data, op: CmpOp::Eq, .. } if data.starts_with(b"wg-mesh\0") && data.len() == 16)
            );
            assert!(matches!(r.last(), Some(Expr::Verdict(_))));
        }
        assert_eq!(rules[6].last(), Some(&Expr::Verdict(NF_DROP)));
        assert!(rules[1..6].iter().all(|r| r.last() == Some(&accept())));
    }

    #[test]
    fn forwarding_from_the_mesh_to_the_mesh_is_counted_and_dropped() {
        let rules = plan().forward_rules();
        let mesh = b"wg-mesh\0\0\0\0\0\0\0\0\0".to_vec();
        assert_eq!(
            rules,
            vec![vec![
                iifname(),
                eq(mesh.clone()),
                Expr::Meta {
                    key: NFT_META_OIFNAME,
                    dreg: REG_1
                },
                eq(mesh),
                Expr::Counter,
                Expr::Verdict(NF_DROP),
            ]]
        );
    }

    #[test]
    fn api_rule_matches_the_subnet_and_port() {
        let api = &plan().input_rules()[3];
        assert!(api.contains(&saddr()));
        assert!(api.contains(&eq(vec![10, 10, 0, 0])));
        assert!(api.contains(&Expr::Bitwise {
            reg: REG_1,
            mask: vec![255, 255, 255, 0],
            xor: vec![0; 4]
        }));
        assert!(api.contains(&eq(8798u16.to_be_bytes().to_vec())));
    }

    #[test]
    fn grant_rules_look_up_address_and_port_in_their_protocols_set() {
        let rules = plan().input_rules();
        for (rule, proto, set, set_id) in [
            (&rules[4], IPPROTO_TCP, GRANT_SET, GRANT_SET_ID),
            (&rules[5], IPPROTO_UDP, UDP_GRANT_SET, UDP_GRANT_SET_ID),
        ] {
            // This protocol only, then one lookup of (source address .
            // destination port): one /32, one port.
            let at = |e: &Expr| rule.iter().position(|x| x == e);
            let lookup = Expr::Lookup {
                set: set.into(),
                set_id,
                sreg: REG_1,
            };
            let (l4, src) = (at(&eq(vec![proto])).unwrap(), at(&saddr()).unwrap());
            assert!(l4 < src, "{rule:?}");
            assert_eq!(at(&saddr()).map(|i| i + 1), at(&dport(REG32_01)));
            assert_eq!(at(&dport(REG32_01)).map(|i| i + 1), at(&lookup));
            assert_eq!(rule.last(), Some(&accept()));
        }
        assert_ne!(GRANT_SET, UDP_GRANT_SET);
        assert_ne!(GRANT_SET_ID, UDP_GRANT_SET_ID);
        assert_eq!(grant_set(Protocol::Udp), (UDP_GRANT_SET, UDP_GRANT_SET_ID));
    }

    #[test]
    fn refuses_bad_names() {
        let net: Ipv4Net = "10.10.0.0/24".parse().unwrap();
        for t in ["", "1abc", "a b", "a;drop", &"x".repeat(33)] {
            assert!(
                Ruleset::new(t, &InterfaceName::parse("wg-mesh").unwrap(), net, 1).is_err(),
                "{t:?}"
            );
        }
        // Bad interface names cannot reach it: they fail to parse.
        for i in ["", "a/b", "sixteen-chars-xx", "a b"] {
            assert!(InterfaceName::parse(i).is_err(), "{i:?}");
        }
        assert!(Ruleset::new("t", &InterfaceName::parse("wg0").unwrap(), net, 0).is_err());
        assert!(Ruleset::new("my_table-2", &InterfaceName::parse("wg0").unwrap(), net, 1).is_ok());
    }

    #[test]
    fn grant_keys_round_trip() {
        let k = super::super::nfmsg::grant_key(Ipv4Addr::new(10, 10, 0, 3), 443);
        assert_eq!(
            parse_grant_key(&k),
            Some((Ipv4Addr::new(10, 10, 0, 3), 443))
        );
        assert_eq!(parse_grant_key(&[1, 2, 3]), None);
    }
}
