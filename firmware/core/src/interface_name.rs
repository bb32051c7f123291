//! A network interface name, checked once, by the kernel's own rules, so
//! that a name the config accepts is one the kernel accepts too.

use core::fmt;

/// `IFNAMSIZ` less the terminating NUL.
pub const MAX_LEN: usize = 15;

/// A valid Linux interface name: what `dev_valid_name()` in
/// `net/core/dev.c` accepts — 1..=15 bytes, not `.` or `..`, no `/`, `:`,
/// NUL or whitespace (the kernel's `isspace`: tab, newline, vertical tab,
/// form feed, carriage return, space and byte 0xa0) — and no `%`, which
/// the kernel's link creation reads as a `%d` pattern, so the interface
/// would not get the name asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "interface name {0:?}: 1-15 bytes, not \".\" or \"..\", no '/', ':', '%', NUL or whitespace"
)]
pub struct BadInterfaceName(pub String);

impl InterfaceName {
    pub fn parse(name: &str) -> Result<InterfaceName, BadInterfaceName> {
        let bad = |b: u8| matches!(b, b'/' | b':' | b'%' | 0 | b'\t'..=b'\r' | b' ' | 0xa0);
        let ok = !name.is_empty()
            && name.len() <= MAX_LEN
            && name != "."
            && name != ".."
            && !name.bytes().any(bad)
            && !name.chars().any(char::is_whitespace);
        if ok {
            Ok(InterfaceName(name.to_string()))
        } else {
            Err(BadInterfaceName(name.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for InterfaceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl core::str::FromStr for InterfaceName {
    type Err = BadInterfaceName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InterfaceName::parse(s)
    }
}

impl TryFrom<String> for InterfaceName {
    type Error = BadInterfaceName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        InterfaceName::parse(&s)
    }
}

impl<'de> serde::Deserialize<'de> for InterfaceName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = InterfaceName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a network interface name")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<InterfaceName, E> {
                InterfaceName::parse(text).map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_rules() {
        for good in ["wg-mesh", "wg0", "a", "123456789012345", "eth0.100", "wg_é"] {
            assert!(InterfaceName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "wg%d",
            "a b",
            "a\tb",
            "a\u{b}b",
            "a\0b",
            "a\u{a0}b",
            "1234567890123456",
            "ééééééééé",
        ] {
            assert_eq!(
                InterfaceName::parse(bad),
                Err(BadInterfaceName(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn deserialises_only_valid_names() {
        #[derive(serde::Deserialize)]
        struct T {
            _name: InterfaceName,
        }
        let ok: Result<T, _> = postcard::from_bytes(&postcard::to_allocvec(&("wg0",)).unwrap());
        assert!(ok.is_ok());
        let bad: Result<T, _> = postcard::from_bytes(&postcard::to_allocvec(&(".",)).unwrap());
        assert!(bad.is_err());
    }
}
