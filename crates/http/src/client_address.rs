//! The address a request comes from: the peer's, or, when the peer is one
//! of `TRUSTED_PROXIES`, the one its `X-Forwarded-For` names. Each proxy
//! appends the address it received the request from, so the list is read
//! from the right, past every trusted proxy, and the first address that
//! is not one is the client; what lies left of it was written by the
//! client itself and is not believed. With no trusted proxy (the default)
//! the header is ignored: anyone can send it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use actix_web::{HttpMessage as _, HttpRequest};
use ipnet::IpNet;

/// The resolved address, kept in the request's extensions by the rate
/// limiter's middleware for whatever runs inside it (the admin lockout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// `TRUSTED_PROXIES`: addresses and CIDR networks, IPv4 or IPv6.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Comma-separated addresses (`10.0.0.7`, `::1`) and networks
    /// (`10.0.0.0/8`, `fd00::/8`); white space and empty entries are
    /// ignored. The error names the entry that is neither.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let network = IpNet::from_str(entry)
                .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                .map_err(|_| format!("{entry:?} is not an IP address or a CIDR network"))?;
            networks.push(network);
        }
        Ok(Self(networks))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client of a request that reached us from `peer`, given the
    /// `X-Forwarded-For` values in the order they came.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            if !self.trusts(client) {
                break;
            }
            // Something that is no address (`unknown`, garbage): the proxy
            // that wrote it is as far as the chain can be followed.
            match parse_hop(hop) {
                Some(address) => client = address,
                None => break,
            }
        }
        client
    }
}

/// An IPv4 address mapped into IPv6 (a dual-stack socket) is the IPv4
/// address, so that `10.0.0.0/8` covers it.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// One hop of `X-Forwarded-For`: an address, or an address with a port as
/// some proxies write it (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    IpAddr::from_str(hop)
        .ok()
        .or_else(|| SocketAddr::from_str(hop).ok().map(|socket| socket.ip()))
        .map(canonical)
}

/// The client address of `req`: the middleware's, or worked out here.
pub fn of_request(req: &HttpRequest, trusted: &TrustedProxies) -> IpAddr {
    if let Some(ClientAddress(address)) = req.extensions().get::<ClientAddress>() {
        return *address;
    }
    resolve(req.peer_addr(), req.headers(), trusted)
}

/// The client address from a peer (none in some tests: the unspecified
/// address, one budget for all of them) and the request's headers.
pub fn resolve(
    peer: Option<SocketAddr>,
    headers: &actix_web::http::header::HeaderMap,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |socket| socket.ip());
    if trusted.is_empty() {
        return canonical(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok());
    trusted.client(peer, forwarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn entries_are_addresses_or_networks() {
        let trusted = TrustedProxies::parse(" 10.0.0.0/8, 192.0.2.1 ,, ::1, fd00::/8").unwrap();
        assert!(trusted.trusts(ip("10.1.2.3")));
        assert!(trusted.trusts(ip("::ffff:10.1.2.3")), "mapped IPv4");
        assert!(trusted.trusts(ip("192.0.2.1")));
        assert!(!trusted.trusts(ip("192.0.2.2")));
        assert!(trusted.trusts(ip("::1")));
        assert!(trusted.trusts(ip("fd12::5")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let error = TrustedProxies::parse("10.0.0.0/8, proxy.internal").unwrap_err();
        assert!(error.contains("proxy.internal"), "{error}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_peer() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let header = ["203.0.113.9"];
        assert_eq!(
            trusted.client(ip("198.51.100.1"), header.into_iter()),
            ip("198.51.100.1")
        );
        assert_eq!(
            trusted.client(ip("10.0.0.2"), header.into_iter()),
            ip("203.0.113.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.2"), header.into_iter()),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client wrote a fake first hop; two of our proxies appended.
        let header = ["1.1.1.1, 203.0.113.9", "10.0.0.5"];
        assert_eq!(
            trusted.client(ip("10.0.0.2"), header.into_iter()),
            ip("203.0.113.9")
        );
        // Every hop trusted: the left-most is as far as it goes.
        assert_eq!(
            trusted.client(ip("10.0.0.2"), ["10.0.0.9, 10.0.0.5"].into_iter()),
            ip("10.0.0.9")
        );
        // Garbage stops the walk at the proxy that wrote it.
        assert_eq!(
            trusted.client(ip("10.0.0.2"), ["203.0.113.9, unknown"].into_iter()),
            ip("10.0.0.2")
        );
        // Ports as some proxies write them.
        assert_eq!(
            trusted.client(ip("10.0.0.2"), ["[2001:db8::7]:4711"].into_iter()),
            ip("2001:db8::7")
        );
        assert_eq!(
            trusted.client(ip("10.0.0.2"), ["203.0.113.9:80"].into_iter()),
            ip("203.0.113.9")
        );
        // No header at all: the proxy itself.
        assert_eq!(
            trusted.client(ip("10.0.0.2"), std::iter::empty()),
            ip("10.0.0.2")
        );
    }
}
