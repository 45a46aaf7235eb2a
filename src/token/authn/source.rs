//! Who a request comes from, for per-source throttling: the TCP peer, or, when the peer is a
//! trusted proxy, the right-most address of the forwarding header that is not itself a trusted
//! proxy (the address the outermost trusted proxy saw; everything left of it is whatever the
//! client chose to send). IPv6 sources are keyed by their /64, the smallest block a host is
//! usually given, so one host cannot spread its failures over 2^64 keys. Pure.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::{HeaderMap, HeaderName, header};
use ipnet::IpNet;

/// The header trusted proxies write the client's address into.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, Envoy, most load balancers).
    #[default]
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    #[value(name = "forwarded")]
    Forwarded,
}

impl ForwardedHeader {
    fn name(self) -> HeaderName {
        match self {
            Self::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            Self::Forwarded => header::FORWARDED,
        }
    }
}

/// The proxies whose forwarding header is believed. Empty: the TCP peer is the source.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    pub networks: Vec<IpNet>,
    pub header: ForwardedHeader,
}

/// The throttling key of a source: an IPv4 address, or an IPv6 /64.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum SourceKey {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl SourceKey {
    pub fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut net = [0u8; 8];
                net.copy_from_slice(&v6.octets()[..8]);
                Self::V6(net)
            }
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:192.0.2.1`, what a dual-stack socket reports) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The address a request from `peer` with `headers` is attributed to.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.networks.is_empty() || !self.trusts(peer) {
            return peer;
        }
        // Right to left over every line of the header, as if they were one list.
        let mut nearest = peer;
        for value in headers.get_all(self.header.name()).iter().rev() {
            let Ok(value) = value.to_str() else {
                return nearest;
            };
            for hop in value.rsplit(',') {
                let address = match self.header {
                    ForwardedHeader::XForwardedFor => Some(hop),
                    ForwardedHeader::Forwarded => forwarded_for(hop),
                };
                // A hop that is not an address (`unknown`, an obfuscated name) was written by
                // the nearest trusted proxy: attribute the request to that proxy.
                let Some(ip) = address.and_then(parse_address) else {
                    return nearest;
                };
                if !self.trusts(ip) {
                    return ip;
                }
                nearest = ip;
            }
        }
        nearest
    }
}

/// The `for=` value of one RFC 7239 forwarded-element (`for=x;proto=https;by=y`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then_some(value)
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally quoted.
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, _port) = rest.split_once(']')?;
        return inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Parses `--trusted-proxies`: a CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{text:?} is not a CIDR (10.0.0.0/8) or an IP address"))
}

#[cfg(test)]
mod tests;
