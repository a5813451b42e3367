//! Who the client is: its secret checked against the catalog, under the failed
//! authentication slow-down.

use std::net::IpAddr;
use std::sync::Arc;

use super::Refusal;
use crate::server::catalog::Catalog;
use crate::server::state::{now, AppState};
use crate::server::token_request::TokenRequest;
use crate::store::Client;

/// As long as a stored secret hash (HMAC-SHA256), and matching no secret's.
const NO_SECRET_HASH: [u8; 32] = [0; 32];

/// Checks the client's secret. A (client_id, address) pair that failed too often is
/// refused with 429 before its secret is looked at. An unknown client_id goes through the
/// same steps as a known one with a wrong secret (counted, slowed down, a keyed hash
/// compared), so no answer, header or delay tells which ids exist.
pub(super) fn client(
    state: &AppState,
    catalog: &Catalog,
    request: &TokenRequest,
    ip: IpAddr,
) -> Result<Arc<Client>, Refusal> {
    let slow_down = |retry_after| Refusal::TooManyRequests {
        retry_after,
        description:
            "too many failed authentications for this client from this address; retry later",
    };
    if let Some(wait) = state.rate_limits.auth_blocked(&request.client_id, ip) {
        return Err(slow_down(wait));
    }
    let secret = request.client_secret.expose();
    match catalog.clients.get(&request.client_id) {
        Some(client) if secret_matches(state, client, secret) => return Ok(client.clone()),
        Some(_) => {}
        // The work a known client's check does, against a hash no secret has; `black_box`
        // so that the compiler cannot drop a computation whose result is unused.
        None => {
            std::hint::black_box(state.hasher.verify(secret, &NO_SECRET_HASH));
        }
    }
    match state.rate_limits.auth_failed(&request.client_id, ip) {
        Some(wait) => Err(slow_down(wait)),
        None => Err(Refusal::InvalidClient(
            "client authentication failed".into(),
        )),
    }
}

fn secret_matches(state: &AppState, client: &Client, secret: &str) -> bool {
    let now = now();
    client
        .secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|at| at > now))
        .any(|s| state.hasher.verify(secret, &s.hash))
}
