//! Boxname: a DNS label (`[a-z0-9-]{1,63}`, no leading or trailing `-`).

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::NodeId;

pub const MAX_BOXNAME_LEN: usize = 63;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "heapless::String<MAX_BOXNAME_LEN>",
    into = "heapless::String<MAX_BOXNAME_LEN>"
)]
pub struct Boxname(heapless::String<MAX_BOXNAME_LEN>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoxnameError {
    #[error("boxname is empty")]
    Empty,
    #[error("boxname is longer than 63 characters")]
    TooLong,
    #[error("boxname may only contain a-z, 0-9 and '-' (found {0:?})")]
    BadCharacter(char),
    #[error("boxname must not start or end with '-'")]
    EdgeHyphen,
}

impl Boxname {
    pub fn parse(text: &str) -> Result<Self, BoxnameError> {
        if text.is_empty() {
            return Err(BoxnameError::Empty);
        }
        if text.len() > MAX_BOXNAME_LEN {
            return Err(BoxnameError::TooLong);
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(BoxnameError::BadCharacter(c));
        }
        if text.starts_with('-') || text.ends_with('-') {
            return Err(BoxnameError::EdgeHyphen);
        }
        let mut s = heapless::String::new();
        s.push_str(text).map_err(|_| BoxnameError::TooLong)?;
        Ok(Boxname(s))
    }

    /// The default name of a box nobody named: `gw-` + the first 10
    /// characters of its id (50 bits: collisions in one mesh are negligible,
    /// and the hub refuses a duplicate anyway).
    pub fn derived_from(id: &NodeId) -> Self {
        let mut s = heapless::String::new();
        let _ = s.push_str("gw-");
        let _ = s.push_str(&id.suffix()[..10]);
        Boxname(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<heapless::String<MAX_BOXNAME_LEN>> for Boxname {
    type Error = BoxnameError;
    fn try_from(s: heapless::String<MAX_BOXNAME_LEN>) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Boxname> for heapless::String<MAX_BOXNAME_LEN> {
    fn from(b: Boxname) -> Self {
        b.0
    }
}

impl fmt::Display for Boxname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Boxname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Boxname({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in [
            "a",
            "0",
            "box-1",
            "mochabin-07",
            &"a".repeat(63),
            "a-b-c",
            "1-2",
        ] {
            assert_eq!(Boxname::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_non_labels() {
        assert_eq!(Boxname::parse(""), Err(BoxnameError::Empty));
        assert_eq!(Boxname::parse(&"a".repeat(64)), Err(BoxnameError::TooLong));
        assert_eq!(Boxname::parse("Box"), Err(BoxnameError::BadCharacter('B')));
        assert_eq!(Boxname::parse("a_b"), Err(BoxnameError::BadCharacter('_')));
        assert_eq!(Boxname::parse("a.b"), Err(BoxnameError::BadCharacter('.')));
        assert_eq!(Boxname::parse("bö"), Err(BoxnameError::BadCharacter('ö')));
        assert_eq!(Boxname::parse("-a"), Err(BoxnameError::EdgeHyphen));
        assert_eq!(Boxname::parse("a-"), Err(BoxnameError::EdgeHyphen));
        assert_eq!(Boxname::parse("-"), Err(BoxnameError::EdgeHyphen));
    }

    #[test]
    fn derived_name_is_a_valid_label() {
        let id = NodeId::from_genesis_key(&[7; 32]);
        let name = Boxname::derived_from(&id);
        assert_eq!(Boxname::parse(name.as_str()).unwrap(), name);
        assert_eq!(name.as_str().len(), 13);
    }

    #[test]
    fn decoding_validates() {
        let bad: heapless::String<63> = heapless::String::try_from("Bad").unwrap();
        let bytes = postcard::to_allocvec(&bad).unwrap();
        assert!(postcard::from_bytes::<Boxname>(&bytes).is_err());
        let too_long = postcard::to_allocvec(&"a".repeat(64)).unwrap();
        assert!(postcard::from_bytes::<Boxname>(&too_long).is_err());
    }
}
