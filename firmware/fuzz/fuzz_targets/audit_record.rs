//! `audit::decode_record`. An accepted record (of either version) is
//! canonical; a typed one is exactly what `next_record` builds from its
//! fields; either verifies as a one-record chain when it is a first record.
#![no_main]

use gondwana_core::audit::{self, AuditHead, Body, MAX_RECORD_BYTES, RECORD_VERSION};
use gondwana_core::hash::blake2b256;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = audit::decode_record(data, 0) else {
        return;
    };
    assert!(data.len() <= MAX_RECORD_BYTES);
    assert_eq!(record.encode(), data, "accepted record is not canonical");
    let head = AuditHead {
        len: record.seq,
        tip: record.prev,
    };
    if let (Some(len), Body::Fields(fields)) = (record.seq.checked_add(1), &record.body) {
        assert_eq!(record.version, RECORD_VERSION);
        let (rebuilt, next) = head.next_record(record.unix_time, &record.kind, fields);
        assert_eq!(
            rebuilt, data,
            "next_record does not rebuild an accepted record"
        );
        assert_eq!(
            next,
            AuditHead {
                len,
                tip: blake2b256(data)
            }
        );
    }
    if record.seq == 0 && record.prev == [0; 32] {
        let head = AuditHead {
            len: 1,
            tip: blake2b256(data),
        };
        assert_eq!(audit::verify_chain([(0, data)], head), Ok(head));
    }
});
