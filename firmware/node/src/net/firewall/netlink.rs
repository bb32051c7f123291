//! The kernel side: batches and dumps on a NETLINK_NETFILTER socket.
//!
//! A batch is built by `rustables` (framing, table, chain, set), our own
//! messages (`nfmsg.rs`) are spliced in before its end marker, every
//! message is renumbered, and the whole batch goes out in one `send` on a
//! socket whose buffers are sized for it (rustables' own `send` hits
//! EMSGSIZE past ~10-20k elements with the default buffer).

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, sockopt,
};
use nix::sys::time::TimeVal;
use rustables::{Batch, Chain, ChainPolicy, ChainType, Hook, HookClass, MsgType, ProtocolFamily};
use rustables::{Set, Table};

use super::nfmsg::{
    self, DumpedElement, GRANT_KEY_LEN, GRANT_KEY_TYPE, NFT_SET_TIMEOUT, NLMSG_DONE, NLMSG_ERROR,
};
use super::plan::{FILTER_PRIORITY, FORWARD_CHAIN, INPUT_CHAIN, Ruleset, grant_set};
use gondwana_core::lending::Protocol;

/// How long the kernel may take to answer before we call it stuck.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const BATCH_END_LEN: usize = 20;
const NFNL_MSG_BATCH_END: u16 = 17;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(Errno),
    #[error("the kernel refused the nf_tables batch: {0}")]
    Refused(Errno),
    #[error("the kernel's nf_tables answer is malformed: {0}")]
    Malformed(String),
}

impl NetlinkError {
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NetlinkError::Socket(e) | NetlinkError::Refused(e) => Some(*e),
            NetlinkError::Malformed(_) => None,
        }
    }
}

fn table(name: &str) -> Table {
    Table::new(ProtocolFamily::Inet).with_name(name)
}

/// The batch that replaces our table with `plan` plus `elements` (TCP
/// grants; the UDP set starts empty, its subscriptions reopen it): add (so
/// a delete cannot fail on a missing table), delete, create. One batch, so
/// the table never half-exists and the old one stays if anything fails.
pub fn replace_table_batch(plan: &Ruleset, elements: &[([u8; 8], Option<u64>)]) -> Vec<u8> {
    let t = table(&plan.table);
    let mut batch = Batch::new();
    batch.add(&t, MsgType::Add);
    batch.add(&t, MsgType::Del);
    batch.add(&t, MsgType::Add);
    for (name, hook) in [
        (INPUT_CHAIN, HookClass::In),
        (FORWARD_CHAIN, HookClass::Forward),
    ] {
        let chain = Chain::new(&t)
            .with_name(name)
            .with_hook(Hook::new(hook, FILTER_PRIORITY))
            .with_type(ChainType::Filter)
            .with_policy(ChainPolicy::Accept);
        batch.add(&chain, MsgType::Add);
    }
    // rustables' SetBuilder leaves the family and the set id unset (the
    // kernel answers ENOENT / EINVAL), so each set is built field by field.
    for proto in [Protocol::Tcp, Protocol::Udp] {
        let (name, id) = grant_set(proto);
        let mut set = Set::default()
            .with_table(plan.table.as_str())
            .with_name(name)
            .with_flags(NFT_SET_TIMEOUT)
            .with_key_type(GRANT_KEY_TYPE)
            .with_key_len(GRANT_KEY_LEN)
            .with_id(id);
        set.family = ProtocolFamily::Inet;
        batch.add(&set, MsgType::Add);
    }
    let mut ours: Vec<Vec<u8>> = plan
        .input_rules()
        .iter()
        .map(|r| nfmsg::rule_message(&plan.table, INPUT_CHAIN, r))
        .chain(
            plan.forward_rules()
                .iter()
                .map(|r| nfmsg::rule_message(&plan.table, FORWARD_CHAIN, r)),
        )
        .collect();
    ours.extend(nfmsg::element_messages(
        &plan.table,
        grant_set(Protocol::Tcp).0,
        nfmsg::ElemOp::Add,
        elements,
    ));
    splice(batch, &ours)
}

/// A batch of element changes only (grant add/delete): atomic as a whole.
pub fn elements_batch(ops: &[Vec<u8>]) -> Vec<u8> {
    splice(Batch::new(), ops)
}

/// rustables' finalized batch with `extra` inserted before its end marker.
fn splice(batch: Batch, extra: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = batch.finalize();
    let end = bytes.split_off(bytes.len().saturating_sub(BATCH_END_LEN));
    for m in extra {
        bytes.extend_from_slice(m);
    }
    bytes.extend_from_slice(&end);
    bytes
}

fn open_socket(buffer: usize) -> Result<OwnedFd, NetlinkError> {
    let fd = socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(NetlinkError::Socket)?;
    socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(NetlinkError::Socket)?;
    // The whole batch is one datagram: the send buffer must hold it. The
    // *Force variants pass the sysctl caps (we hold CAP_NET_ADMIN anyway,
    // or nf_tables would refuse us); fall back to the capped ones.
    let size = buffer.max(1 << 20);
    if socket::setsockopt(&fd, sockopt::SndBufForce, &size).is_err() {
        let _ = socket::setsockopt(&fd, sockopt::SndBuf, &size);
    }
    if socket::setsockopt(&fd, sockopt::RcvBufForce, &size).is_err() {
        let _ = socket::setsockopt(&fd, sockopt::RcvBuf, &size);
    }
    let timeout = TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0);
    socket::setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(NetlinkError::Socket)?;
    Ok(fd)
}

/// Sends a batch and waits for the kernel's verdict on every message.
pub fn send_batch(mut batch: Vec<u8>) -> Result<(), NetlinkError> {
    let last = nfmsg::renumber(&mut batch, 0).map_err(NetlinkError::Malformed)?;
    check_end_marker(&batch)?;
    // Every message but the two markers asks for an ack; the last of them
    // carries `last - 1`.
    let wanted = last.saturating_sub(1);
    let fd = open_socket(batch.len() * 2)?;
    let sent =
        socket::send(fd.as_raw_fd(), &batch, MsgFlags::empty()).map_err(NetlinkError::Socket)?;
    if sent != batch.len() {
        return Err(NetlinkError::Malformed(format!(
            "sent {sent} of {} bytes",
            batch.len()
        )));
    }
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())
            .map_err(NetlinkError::Socket)?;
        for (ty, seq, payload) in messages(&buf[..n])? {
            if ty == NLMSG_ERROR {
                let code = error_code(payload)?;
                if code != 0 {
                    return Err(NetlinkError::Refused(Errno::from_raw(code.abs())));
                }
                if seq >= wanted {
                    return Ok(());
                }
            }
        }
    }
}

fn check_end_marker(batch: &[u8]) -> Result<(), NetlinkError> {
    let end = batch
        .len()
        .checked_sub(BATCH_END_LEN)
        .and_then(|at| batch.get(at + 4..at + 6))
        .map(|b| u16::from_ne_bytes([b[0], b[1]]));
    if end != Some(NFNL_MSG_BATCH_END) {
        return Err(NetlinkError::Malformed("batch has no end marker".into()));
    }
    Ok(())
}

/// Every element of our grant set for `proto`, as the kernel holds it now.
pub fn dump_elements(
    table_name: &str,
    proto: Protocol,
) -> Result<Vec<DumpedElement>, NetlinkError> {
    let mut request = nfmsg::element_dump_request(table_name, grant_set(proto).0);
    nfmsg::renumber(&mut request, 1).map_err(NetlinkError::Malformed)?;
    let fd = open_socket(1 << 20)?;
    socket::send(fd.as_raw_fd(), &request, MsgFlags::empty()).map_err(NetlinkError::Socket)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 17];
    loop {
        let n = socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())
            .map_err(NetlinkError::Socket)?;
        if n == 0 {
            return Ok(out);
        }
        for (ty, _, payload) in messages(&buf[..n])? {
            match ty {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let code = error_code(payload)?;
                    if code != 0 {
                        return Err(NetlinkError::Refused(Errno::from_raw(code.abs())));
                    }
                }
                _ => {
                    // nfgenmsg (4 bytes), then the attributes.
                    let attrs = payload.get(4..).unwrap_or_default();
                    out.extend(nfmsg::parse_elements(attrs).map_err(NetlinkError::Malformed)?);
                }
            }
        }
    }
}

/// One received message: type, sequence number, payload after the header.
type Message<'a> = (u16, u32, &'a [u8]);

/// Every message in a datagram.
fn messages(mut buf: &[u8]) -> Result<Vec<Message<'_>>, NetlinkError> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            return Err(NetlinkError::Malformed(format!(
                "message length {len} in {} bytes",
                buf.len()
            )));
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        out.push((ty, seq, &buf[16..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    Ok(out)
}

fn error_code(payload: &[u8]) -> Result<i32, NetlinkError> {
    payload
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| NetlinkError::Malformed("short error message".into()))
}
