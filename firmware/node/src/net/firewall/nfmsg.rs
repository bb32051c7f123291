//! nf_tables netlink messages that `rustables` 0.9 cannot express, encoded
//! and decoded by hand: rules with 32-bit registers (the concatenated
//! `ip saddr . tcp dport` lookup), set elements with a timeout, and the
//! set-element dump. `rustables` frames the batch and writes the table,
//! chain and set messages; its writer traits are crate-private, so these
//! messages are spliced into its finalized batch (see `netlink.rs`).
//!
//! Pure: bytes in, bytes out. Constants are the uapi values of
//! `linux/netfilter/nf_tables.h` / `nfnetlink.h` (a stable kernel ABI); the
//! tests compare them with the `rustables::sys` bindings generated from the
//! same headers.

use std::net::Ipv4Addr;

pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFPROTO_INET: u8 = 1;
pub const NFPROTO_IPV4: u8 = 2;

pub const NFT_MSG_NEWRULE: u16 = 6;
pub const NFT_MSG_NEWSETELEM: u16 = 12;
pub const NFT_MSG_GETSETELEM: u16 = 13;
pub const NFT_MSG_DELSETELEM: u16 = 14;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_SET_ID: u16 = 4;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_SET_ELEM_EXPIRATION: u16 = 5;

/// Registers: the verdict, the first 128-bit one, and the second 32-bit
/// slot of it (where a concatenation's second field goes).
pub const REG_VERDICT: u32 = 0;
pub const REG_1: u32 = 1;
pub const REG32_01: u32 = 9;

pub const NFT_META_IIFNAME: u32 = 6;
pub const NFT_META_OIFNAME: u32 = 7;
pub const NFT_META_NFPROTO: u32 = 15;
pub const NFT_META_L4PROTO: u32 = 16;
pub const NFT_CT_STATE: u32 = 0;
pub const NFT_SET_TIMEOUT: u32 = 0x10;
pub const NF_DROP: u32 = 0;
pub const NF_ACCEPT: u32 = 1;
/// `ct state` bits (host byte order, as the kernel keeps them).
pub const CT_ESTABLISHED: u32 = 1 << 1;
pub const CT_RELATED: u32 = 1 << 2;
/// nft's datatype numbers, for a concatenated set key type.
pub const TYPE_IPADDR: u32 = 7;
pub const TYPE_INET_SERVICE: u32 = 13;
/// `ipv4_addr . inet_service` (nft packs concatenations 6 bits a field).
pub const GRANT_KEY_TYPE: u32 = (TYPE_IPADDR << 6) | TYPE_INET_SERVICE;
/// Each concatenated field takes a whole 32-bit register.
pub const GRANT_KEY_LEN: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadBase {
    Network = 1,
    Transport = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq = 0,
    Neq = 1,
}

/// One nf_tables expression, as nft itself would generate it (so that
/// `nft list ruleset` prints our rules in its usual words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Meta {
        key: u32,
        dreg: u32,
    },
    Cmp {
        sreg: u32,
        op: CmpOp,
        data: Vec<u8>,
    },
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Bitwise {
        reg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    CtState {
        dreg: u32,
    },
    Lookup {
        set: String,
        set_id: u32,
        sreg: u32,
    },
    Counter,
    Verdict(u32),
}

/// A growing netlink attribute stream.
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, ty: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.pad();
    }
    fn u32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }
    fn u64(&mut self, ty: u16, v: u64) {
        self.put(ty, &v.to_be_bytes());
    }
    fn str(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(ty, &v);
    }
    fn nest(&mut self, ty: u16, inner: Attrs) {
        self.put(ty | NLA_F_NESTED, &inner.0);
    }
    fn value(&mut self, ty: u16, data: &[u8]) {
        let mut v = Attrs::default();
        v.put(NFTA_DATA_VALUE, data);
        self.nest(ty, v);
    }
    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }
}

fn expr_attrs(e: &Expr) -> (&'static str, Attrs) {
    let mut a = Attrs::default();
    let name = match e {
        Expr::Meta { key, dreg } => {
            a.u32(NFTA_META_DREG, *dreg);
            a.u32(NFTA_META_KEY, *key);
            "meta"
        }
        Expr::Cmp { sreg, op, data } => {
            a.u32(NFTA_CMP_SREG, *sreg);
            a.u32(NFTA_CMP_OP, *op as u32);
            a.value(NFTA_CMP_DATA, data);
            "cmp"
        }
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            a.u32(NFTA_PAYLOAD_DREG, *dreg);
            a.u32(NFTA_PAYLOAD_BASE, *base as u32);
            a.u32(NFTA_PAYLOAD_OFFSET, *offset);
            a.u32(NFTA_PAYLOAD_LEN, *len);
            "payload"
        }
        Expr::Bitwise { reg, mask, xor } => {
            a.u32(NFTA_BITWISE_SREG, *reg);
            a.u32(NFTA_BITWISE_DREG, *reg);
            a.u32(NFTA_BITWISE_LEN, mask.len() as u32);
            a.value(NFTA_BITWISE_MASK, mask);
            a.value(NFTA_BITWISE_XOR, xor);
            "bitwise"
        }
        Expr::CtState { dreg } => {
            a.u32(NFTA_CT_DREG, *dreg);
            a.u32(NFTA_CT_KEY, NFT_CT_STATE);
            "ct"
        }
        Expr::Lookup { set, set_id, sreg } => {
            a.str(NFTA_LOOKUP_SET, set);
            a.u32(NFTA_LOOKUP_SREG, *sreg);
            a.u32(NFTA_LOOKUP_SET_ID, *set_id);
            "lookup"
        }
        Expr::Counter => "counter",
        Expr::Verdict(code) => {
            let mut verdict = Attrs::default();
            verdict.u32(NFTA_VERDICT_CODE, *code);
            let mut data = Attrs::default();
            data.nest(NFTA_DATA_VERDICT, verdict);
            a.u32(NFTA_IMMEDIATE_DREG, REG_VERDICT);
            a.nest(NFTA_IMMEDIATE_DATA, data);
            "immediate"
        }
    };
    (name, a)
}

/// One netlink message: header, nfgenmsg (family, version 0, res id 0),
/// attributes. The sequence number is set when the batch is assembled.
pub fn message(msg_type: u16, flags: u16, family: u8, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg_type).to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    m.extend_from_slice(&[family, 0, 0, 0]);
    m.extend_from_slice(attrs);
    m
}

/// `NEWRULE`, appended at the end of `chain`.
pub fn rule_message(table: &str, chain: &str, exprs: &[Expr]) -> Vec<u8> {
    let mut list = Attrs::default();
    for e in exprs {
        let (name, data) = expr_attrs(e);
        let mut elem = Attrs::default();
        elem.str(NFTA_EXPR_NAME, name);
        if !data.0.is_empty() {
            elem.nest(NFTA_EXPR_DATA, data);
        }
        list.nest(NFTA_LIST_ELEM, elem);
    }
    let mut a = Attrs::default();
    a.str(NFTA_RULE_TABLE, table);
    a.str(NFTA_RULE_CHAIN, chain);
    a.nest(NFTA_RULE_EXPRESSIONS, list);
    message(
        NFT_MSG_NEWRULE,
        NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK,
        NFPROTO_INET,
        &a.0,
    )
}

/// A grant's set key: the address, then the port, each in its own 32-bit
/// register slot (network byte order, zero padded).
pub fn grant_key(ip: Ipv4Addr, port: u16) -> [u8; 8] {
    let mut k = [0; 8];
    k[..4].copy_from_slice(&ip.octets());
    k[4..6].copy_from_slice(&port.to_be_bytes());
    k
}

/// Whether an element message adds or removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemOp {
    Add,
    Delete,
}

/// Elements per message: one message's attributes are capped at 64 KiB
/// (a 16-bit length); a grant element takes about 40 bytes.
pub const ELEMENTS_PER_MESSAGE: usize = 1000;

/// `NEWSETELEM`/`DELSETELEM` messages for `elements` (key, timeout in
/// milliseconds), chunked so no message overflows; all go into one batch.
pub fn element_messages(
    table: &str,
    set: &str,
    op: ElemOp,
    elements: &[([u8; 8], Option<u64>)],
) -> Vec<Vec<u8>> {
    elements
        .chunks(ELEMENTS_PER_MESSAGE)
        .map(|chunk| {
            let mut list = Attrs::default();
            for (key, timeout_ms) in chunk {
                let mut elem = Attrs::default();
                elem.value(NFTA_SET_ELEM_KEY, key);
                if let (ElemOp::Add, Some(ms)) = (op, timeout_ms) {
                    elem.u64(NFTA_SET_ELEM_TIMEOUT, *ms);
                }
                list.nest(NFTA_LIST_ELEM, elem);
            }
            let mut a = Attrs::default();
            a.str(NFTA_SET_ELEM_LIST_TABLE, table);
            a.str(NFTA_SET_ELEM_LIST_SET, set);
            a.nest(NFTA_SET_ELEM_LIST_ELEMENTS, list);
            let (ty, flags) = match op {
                ElemOp::Add => (NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_ACK),
                ElemOp::Delete => (NFT_MSG_DELSETELEM, NLM_F_ACK),
            };
            message(ty, flags, NFPROTO_INET, &a.0)
        })
        .collect()
}

/// The dump request for every element of `set`.
pub fn element_dump_request(table: &str, set: &str) -> Vec<u8> {
    let mut a = Attrs::default();
    a.str(NFTA_SET_ELEM_LIST_TABLE, table);
    a.str(NFTA_SET_ELEM_LIST_SET, set);
    message(
        NFT_MSG_GETSETELEM,
        NLM_F_DUMP | NLM_F_ACK,
        NFPROTO_INET,
        &a.0,
    )
}

/// A set element as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedElement {
    pub key: Vec<u8>,
    pub timeout_ms: Option<u64>,
    pub expires_in_ms: Option<u64>,
}

/// Splits an attribute stream into (type, payload), refusing truncation.
pub fn attributes(mut buf: &[u8]) -> Result<Vec<(u16, &[u8])>, String> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return Err(format!("attribute of length {len} in {} bytes", buf.len()));
        }
        out.push((ty, &buf[4..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    Ok(out)
}

fn be_u64(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

/// The elements in one `NEWSETELEM` dump message's attributes.
pub fn parse_elements(attrs: &[u8]) -> Result<Vec<DumpedElement>, String> {
    let mut out = Vec::new();
    for (ty, payload) in attributes(attrs)? {
        if ty != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for (_, elem) in attributes(payload)? {
            let mut e = DumpedElement {
                key: Vec::new(),
                timeout_ms: None,
                expires_in_ms: None,
            };
            for (ety, v) in attributes(elem)? {
                match ety {
                    NFTA_SET_ELEM_KEY => {
                        for (dty, d) in attributes(v)? {
                            if dty == NFTA_DATA_VALUE {
                                e.key = d.to_vec();
                            }
                        }
                    }
                    NFTA_SET_ELEM_TIMEOUT => e.timeout_ms = be_u64(v),
                    NFTA_SET_ELEM_EXPIRATION => e.expires_in_ms = be_u64(v),
                    _ => {}
                }
            }
            out.push(e);
        }
    }
    Ok(out)
}

/// Rewrites every message's sequence number to its index from `first` and
/// returns the last one used.
pub fn renumber(batch: &mut [u8], first: u32) -> Result<u32, String> {
    let mut at = 0;
    let mut seq = first;
    while at < batch.len() {
        let len = batch
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            .ok_or("truncated message header")? as usize;
        if len < 16 || at + len > batch.len() {
            return Err(format!("message of length {len} at {at}"));
        }
        batch[at + 8..at + 12].copy_from_slice(&seq.to_ne_bytes());
        at += len.next_multiple_of(4);
        seq += 1;
    }
    Ok(seq.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustables::sys;

    #[test]
    fn constants_match_the_kernel_headers() {
        let pairs: [(u64, u64); 23] = [
            (NFT_MSG_NEWRULE.into(), sys::NFT_MSG_NEWRULE.into()),
            (NFT_MSG_NEWSETELEM.into(), sys::NFT_MSG_NEWSETELEM.into()),
            (NFT_MSG_GETSETELEM.into(), sys::NFT_MSG_GETSETELEM.into()),
            (NFT_MSG_DELSETELEM.into(), sys::NFT_MSG_DELSETELEM.into()),
            (
                NFTA_RULE_EXPRESSIONS.into(),
                sys::NFTA_RULE_EXPRESSIONS.into(),
            ),
            (
                NFTA_SET_ELEM_TIMEOUT.into(),
                sys::NFTA_SET_ELEM_TIMEOUT.into(),
            ),
            (
                NFTA_SET_ELEM_EXPIRATION.into(),
                sys::NFTA_SET_ELEM_EXPIRATION.into(),
            ),
            (
                NFTA_SET_ELEM_LIST_ELEMENTS.into(),
                sys::NFTA_SET_ELEM_LIST_ELEMENTS.into(),
            ),
            (NFTA_LOOKUP_SET_ID.into(), sys::NFTA_LOOKUP_SET_ID.into()),
            (NFTA_BITWISE_XOR.into(), sys::NFTA_BITWISE_XOR.into()),
            (NFTA_CT_KEY.into(), sys::NFTA_CT_KEY.into()),
            (NFTA_PAYLOAD_LEN.into(), sys::NFTA_PAYLOAD_LEN.into()),
            (NFTA_CMP_DATA.into(), sys::NFTA_CMP_DATA.into()),
            (NFTA_IMMEDIATE_DATA.into(), sys::NFTA_IMMEDIATE_DATA.into()),
            (NFTA_VERDICT_CODE.into(), sys::NFTA_VERDICT_CODE.into()),
            (REG32_01.into(), sys::NFT_REG32_01.into()),
            (NFT_META_IIFNAME.into(), sys::NFT_META_IIFNAME.into()),
            (NFT_META_OIFNAME.into(), sys::NFT_META_OIFNAME.into()),
            (NFT_META_NFPROTO.into(), sys::NFT_META_NFPROTO.into()),
            (NFT_META_L4PROTO.into(), sys::NFT_META_L4PROTO.into()),
            (NFT_SET_TIMEOUT.into(), sys::NFT_SET_TIMEOUT.into()),
            (NFT_CT_STATE.into(), sys::NFT_CT_STATE.into()),
            (
                NFNL_SUBSYS_NFTABLES.into(),
                sys::NFNL_SUBSYS_NFTABLES.into(),
            ),
        ];
        for (i, (ours, theirs)) in pairs.iter().enumerate() {
            assert_eq!(ours, theirs, "constant #{i}");
        }
    }

    #[test]
    fn grant_key_layout() {
        assert_eq!(
            grant_key(Ipv4Addr::new(10, 10, 0, 7), 8080),
            [10, 10, 0, 7, 0x1f, 0x90, 0, 0]
        );
    }

    #[test]
    fn element_messages_chunk_and_parse_back() {
        let elems: Vec<_> = (0..2500u32)
            .map(|i| (grant_key(Ipv4Addr::from(0x0a0a_0000 + i), 22), Some(1000)))
            .collect();
        let msgs = element_messages("gondwana", "grants", ElemOp::Add, &elems);
        assert_eq!(msgs.len(), 3);
        for m in &msgs {
            assert!(m.len() < 65_000, "message of {} bytes", m.len());
        }
        // The attributes after the 20-byte headers parse as what went in.
        let parsed = parse_elements(&msgs[2][20..]).unwrap();
        assert_eq!(parsed.len(), 500);
        assert_eq!(parsed[0].key, elems[2000].0);
        assert_eq!(parsed[0].timeout_ms, Some(1000));
    }

    #[test]
    fn renumbering_walks_every_message() {
        let mut batch = [
            rule_message("t", "c", &[Expr::Counter]),
            rule_message("t", "c", &[Expr::Verdict(NF_DROP)]),
        ]
        .concat();
        assert_eq!(renumber(&mut batch, 5).unwrap(), 6);
        assert!(renumber(&mut batch[..10].to_vec(), 0).is_err());
    }

    #[test]
    fn hostile_attribute_streams_are_errors_not_panics() {
        assert!(attributes(&[0xff, 0xff, 1, 0]).is_err());
        assert!(attributes(&[2, 0, 1, 0]).is_err());
        assert!(parse_elements(&[8, 0, 3, 0x80, 9, 0, 1, 0]).is_err());
        assert_eq!(attributes(&[1, 2]).unwrap(), vec![]);
    }
}
