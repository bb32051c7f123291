//! The 40-byte form of a chain head (count, tip hash) kept in `meta`, shared
//! by the audit chain and the directory.

pub fn encode(len: u64, tip: &[u8; 32]) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&len.to_le_bytes());
    out[8..].copy_from_slice(tip);
    out
}

pub fn decode(bytes: &[u8]) -> Option<(u64, [u8; 32])> {
    if bytes.len() != 40 {
        return None;
    }
    let len = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    let tip = bytes[8..].try_into().ok()?;
    Some((len, tip))
}
