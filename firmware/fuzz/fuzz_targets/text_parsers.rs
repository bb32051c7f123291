//! The text parsers, on arbitrary UTF-8: node ids, boxnames, enrolment
//! tokens, wg-quick configs and key text. What parses has one text form.
#![no_main]

use gondwana_core::envelope::{self, decode_canonical};
use gondwana_core::keys::{decode_hex32, wg_key_from_base64, wg_key_to_base64};
use gondwana_core::token::TokenSecret;
use gondwana_core::{Boxname, NodeId, wg_quick};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(id) = NodeId::parse(text) {
        assert_eq!(id.as_str(), text);
        let bytes = envelope::encode(&id);
        assert_eq!(decode_canonical::<NodeId>(&bytes, 64).as_ref(), Ok(&id));
    }

    if let Ok(name) = Boxname::parse(text) {
        assert_eq!(name.as_str(), text);
        let bytes = envelope::encode(&name);
        assert_eq!(decode_canonical::<Boxname>(&bytes, 64).as_ref(), Ok(&name));
    }

    if let Ok(token) = TokenSecret::parse(text) {
        let canonical = token.to_text();
        assert_eq!(
            canonical.as_str(),
            text.trim(),
            "token text is not canonical"
        );
        let back = TokenSecret::parse(&canonical).expect("token text round-trips");
        assert_eq!(back.public_key(), token.public_key());
    }

    if let Ok(key) = wg_key_from_base64(text) {
        assert_eq!(
            wg_key_to_base64(&key),
            text.trim(),
            "key text is not canonical"
        );
    }

    if let Ok(key) = decode_hex32(text) {
        assert!(
            text.trim()
                .eq_ignore_ascii_case(&gondwana_core::hash::to_hex(&key))
        );
    }

    if let Ok(key) = wg_quick::private_key(text) {
        let config = format!("[Interface]\nPrivateKey = {}\n", wg_key_to_base64(&key));
        assert_eq!(wg_quick::private_key(&config).as_deref(), Ok(&*key));
    }
});
