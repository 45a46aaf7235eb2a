use super::*;

fn proxies(nets: &[&str], header: ForwardedHeader) -> TrustedProxies {
    TrustedProxies {
        networks: nets.iter().map(|n| parse_network(n).unwrap()).collect(),
        header,
    }
}

fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for v in values {
        map.append(name, v.parse().unwrap());
    }
    map
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn without_trusted_proxies_the_peer_is_the_source_whatever_the_headers_say() {
    let h = headers("x-forwarded-for", &["203.0.113.9"]);
    let none = TrustedProxies::default();
    assert_eq!(none.client(ip("10.0.0.5"), &h), ip("10.0.0.5"));
    let other = proxies(&["10.1.0.0/16"], ForwardedHeader::XForwardedFor);
    assert_eq!(
        other.client(ip("10.0.0.5"), &h),
        ip("10.0.0.5"),
        "a peer outside the trusted networks cannot name another source"
    );
}

#[test]
fn the_right_most_untrusted_address_of_x_forwarded_for_is_the_source() {
    let p = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
    // The client made up the first two; the ingress (10.0.0.5) appended what it saw.
    let h = headers(
        "x-forwarded-for",
        &["198.51.100.1, 192.0.2.77", "203.0.113.9, 10.2.3.4"],
    );
    assert_eq!(p.client(ip("10.0.0.5"), &h), ip("203.0.113.9"));
    let ported = headers("x-forwarded-for", &["203.0.113.9:5123"]);
    assert_eq!(p.client(ip("10.0.0.5"), &ported), ip("203.0.113.9"));
    let v6 = headers("x-forwarded-for", &["[2001:db8::7]:443"]);
    assert_eq!(p.client(ip("10.0.0.5"), &v6), ip("2001:db8::7"));
}

#[test]
fn only_trusted_hops_or_no_header_attribute_the_request_to_the_nearest_proxy() {
    let p = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
    assert_eq!(p.client(ip("10.0.0.5"), &HeaderMap::new()), ip("10.0.0.5"));
    let h = headers("x-forwarded-for", &["10.9.9.9"]);
    assert_eq!(p.client(ip("10.0.0.5"), &h), ip("10.9.9.9"));
    let garbage = headers("x-forwarded-for", &["203.0.113.9, unknown, 10.9.9.9"]);
    assert_eq!(
        p.client(ip("10.0.0.5"), &garbage),
        ip("10.9.9.9"),
        "a hop that is no address stops the walk at the proxy that wrote it"
    );
}

#[test]
fn rfc_7239_forwarded_is_read_when_configured_and_only_then() {
    let p = proxies(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
    let h = headers(
        "forwarded",
        &[r#"for=192.0.2.60;proto=http, For="[2001:db8:cafe::17]:4711";by=10.0.0.5"#],
    );
    assert_eq!(p.client(ip("10.0.0.5"), &h), ip("2001:db8:cafe::17"));
    let xff = headers("x-forwarded-for", &["203.0.113.9"]);
    assert_eq!(
        p.client(ip("10.0.0.5"), &xff),
        ip("10.0.0.5"),
        "X-Forwarded-For is ignored when the proxies write Forwarded"
    );
    let obfuscated = headers("forwarded", &["for=_hidden"]);
    assert_eq!(p.client(ip("10.0.0.5"), &obfuscated), ip("10.0.0.5"));
}

#[test]
fn ipv6_sources_share_a_key_per_64_and_mapped_ipv4_is_ipv4() {
    let a = SourceKey::of(ip("2001:db8:1:2:aaaa::1"));
    let b = SourceKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    let c = SourceKey::of(ip("2001:db8:1:3::1"));
    assert_eq!(a, b, "one /64");
    assert_ne!(a, c, "another /64");
    assert_eq!(
        SourceKey::of(ip("::ffff:192.0.2.1")),
        SourceKey::of(ip("192.0.2.1"))
    );
    assert_ne!(
        SourceKey::of(ip("192.0.2.1")),
        SourceKey::of(ip("192.0.2.2"))
    );
    let p = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
    let h = headers("x-forwarded-for", &["203.0.113.9"]);
    assert_eq!(
        p.client(ip("::ffff:10.0.0.5"), &h),
        ip("203.0.113.9"),
        "a mapped peer address is matched against IPv4 networks"
    );
}

#[test]
fn networks_parse_as_cidrs_or_single_addresses() {
    assert_eq!(
        parse_network("10.1.2.3/8").unwrap().to_string(),
        "10.0.0.0/8"
    );
    assert_eq!(
        parse_network(" 192.0.2.1 ").unwrap().to_string(),
        "192.0.2.1/32"
    );
    assert_eq!(parse_network("fd00::/8").unwrap().to_string(), "fd00::/8");
    assert!(parse_network("10.0.0.0/33").is_err());
    assert!(parse_network("proxy.example").is_err());
}
