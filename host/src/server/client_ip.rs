//! The caller's address: the socket peer, or `X-Forwarded-For` when, and only when, the
//! peer is a configured trusted proxy (then the right-most address that is not itself a
//! trusted proxy, so a client cannot forge its way in by prepending entries).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::oauth_error::OAuthError;
use super::state::AppState;

/// The caller's address as an extractor, by the server's `trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OAuthError> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Err(OAuthError::internal(
                "no peer address: the server was started without connect info",
            ));
        };
        Ok(ClientIp(client_ip(
            *peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    if !trusted.contains(&peer_ip) {
        return peer_ip;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer_ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let peer: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        assert_eq!(client_ip(peer, &headers("1.2.3.4"), &[]), peer.ip());
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_wins() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let peer = SocketAddr::new(proxy, 443);
        let ip = client_ip(peer, &headers("6.6.6.6, 198.51.100.7, 10.0.0.1"), &[proxy]);
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
    }
}
