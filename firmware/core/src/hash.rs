//! BLAKE2b-256, the one hash used for node ids and every hash chain.

use blake2::{Blake2b, Digest, digest::consts::U32};

pub type Hash32 = [u8; 32];

/// BLAKE2b with a 32-byte output (not BLAKE2b-512 truncated: the output
/// length is part of BLAKE2's parameter block).
pub fn blake2b256(data: &[u8]) -> Hash32 {
    Blake2b::<U32>::digest(data).into()
}

/// Incremental BLAKE2b-256, for data too large to hold at once (update
/// bundles are hashed while they stream to disk).
#[derive(Default, Clone)]
pub struct Blake2b256(Blake2b<U32>);

impl Blake2b256 {
    pub fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }

    pub fn finish(self) -> Hash32 {
        self.0.finalize().into()
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_equals_one_shot() {
        let mut h = Blake2b256::default();
        h.update(b"gond");
        h.update(b"wana");
        assert_eq!(h.finish(), blake2b256(b"gondwana"));
    }

    #[test]
    fn empty_input_matches_reference() {
        // RFC 7693 parameterisation, digest length 32; same value as
        // Python's hashlib.blake2b(b"", digest_size=32).
        assert_eq!(
            to_hex(&blake2b256(b"")),
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
        );
    }
}
