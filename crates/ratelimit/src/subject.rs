//! What a budget belongs to: the API key a request authenticated with, or
//! else the address it came from.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The visible prefix of an API key (never its secret).
    Key(String),
    /// An IPv4 address, or the /64 network of an IPv6 one.
    Address(IpAddr),
}

impl Subject {
    /// An address as a subject. An IPv6 client is usually handed a whole
    /// /64 and can pick any address in it, so the /64 is what is limited;
    /// an IPv4 address mapped into IPv6 (a dual-stack socket) is the IPv4
    /// address it maps.
    pub fn address(address: IpAddr) -> Self {
        let address = match address {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(Ipv6Addr::from(network))
                }
            },
            v4 => v4,
        };
        Self::Address(address)
    }

    pub fn key(prefix: impl Into<String>) -> Self {
        Self::Key(prefix.into())
    }

    /// The subject's name in a store: kinds apart, so that no key prefix
    /// can share a budget with an address.
    pub fn storage_key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(prefix) => write!(f, "key:{prefix}"),
            Self::Address(IpAddr::V4(v4)) => write!(f, "ip:{v4}"),
            Self::Address(IpAddr::V6(v6)) => write!(f, "ip:{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_kinds_apart() {
        assert_eq!(
            Subject::key("ok_live_ab12").storage_key(),
            "key:ok_live_ab12"
        );
        assert_eq!(
            Subject::address("192.0.2.7".parse().unwrap()).storage_key(),
            "ip:192.0.2.7"
        );
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let a = Subject::address("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = Subject::address("2001:db8:1:2:ffff:1:2:3".parse().unwrap());
        let other = Subject::address("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.storage_key(), "ip:2001:db8:1:2::/64");
        assert_eq!(
            Subject::address("::ffff:192.0.2.7".parse().unwrap()),
            Subject::address("192.0.2.7".parse().unwrap())
        );
    }
}
