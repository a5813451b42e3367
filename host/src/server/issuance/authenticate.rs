//! Who the client is: its secret, or its signed client assertion (private_key_jwt, RFC
//! 7523), checked against the catalog under the failed authentication slow-down.
//!
//! Every way to fail counts the same, whatever the method: an unknown client, a wrong
//! secret, a secret the client does not accept, an assertion that does not verify or was
//! used before.

use std::net::IpAddr;
use std::sync::Arc;

use super::replay::{self, UseOnce};
use super::Refusal;
use crate::client_auth::assertion::{self, AssertionKey, Expectations};
use crate::server::catalog::Catalog;
use crate::server::state::{now, AppState};
use crate::server::token_request::{AuthMethod, ClientProof, TokenRequest};
use crate::store::Client;

/// As long as a stored secret hash (HMAC-SHA256), and matching no secret's.
const NO_SECRET_HASH: [u8; 32] = [0; 32];

/// The description of most failures: no more detail than a wrong secret gets, so that no
/// answer tells which client ids exist or how they authenticate.
const FAILED: &str = "client authentication failed";

/// An authenticated client, and how it proved itself.
#[derive(Debug)]
pub struct Authenticated {
    pub client: Arc<Client>,
    pub method: AuthMethod,
    /// The credential that verified a client assertion.
    pub credential_id: Option<String>,
}

/// Checks the client's proof. A (client_id, address) pair that failed too often is
/// refused with 429 before its proof is looked at. An unknown client_id goes through the
/// same steps as a known one with a wrong secret (counted, slowed down, a keyed hash
/// compared), so no answer, header or delay tells which ids exist.
pub(super) async fn client(
    state: &AppState,
    catalog: &Catalog,
    request: &TokenRequest,
    ip: IpAddr,
) -> Result<Authenticated, Refusal> {
    let claimed = &request.client;
    let slow_down = |exceeded| Refusal::TooManyRequests {
        exceeded,
        description:
            "too many failed authentications for this client from this address; retry later",
    };
    if let Some(wait) = state.rate_limits.auth_blocked(&claimed.client_id, ip) {
        return Err(slow_down(wait));
    }
    let checked = match &claimed.proof {
        ClientProof::Secret(secret) => by_secret(state, catalog, &claimed.client_id, secret),
        ClientProof::Assertion(jwt) => by_assertion(state, catalog, &claimed.client_id, jwt).await,
    };
    match checked {
        Ok((client, credential_id)) => Ok(Authenticated {
            client,
            method: claimed.method,
            credential_id,
        }),
        Err(description) => match state.rate_limits.auth_failed(&claimed.client_id, ip) {
            Some(wait) => Err(slow_down(wait)),
            None => Err(match description {
                Failure::Internal(cause) => Refusal::Internal { cause },
                Failure::Refused(description) => Refusal::InvalidClient(description),
            }),
        },
    }
}

enum Failure {
    Refused(String),
    /// The replay cache could not be asked: not the client's fault, still no token.
    Internal(String),
}

fn refused(description: impl Into<String>) -> Failure {
    Failure::Refused(description.into())
}

fn by_secret(
    state: &AppState,
    catalog: &Catalog,
    client_id: &str,
    secret: &str,
) -> Result<(Arc<Client>, Option<String>), Failure> {
    match catalog.clients.get(client_id) {
        Some(client) if secret_matches(state, client, secret) => {
            if client.authentication.token_endpoint_auth_method.is_none() {
                // Said only to whoever knows the secret.
                return Err(refused(
                    "this client does not accept its client secret: it authenticates with \
                     private_key_jwt (send client_assertion)",
                ));
            }
            Ok((client.clone(), None))
        }
        Some(_) => Err(refused(FAILED)),
        // The work a known client's check does, against a hash no secret has; `black_box`
        // so that the compiler cannot drop a computation whose result is unused.
        None => {
            std::hint::black_box(state.hasher.verify(secret, &NO_SECRET_HASH));
            Err(refused(FAILED))
        }
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

/// Verifies the assertion with the client's enabled, unexpired credentials, then uses its
/// `jti` up: a second use, on any node sharing the store, is refused.
async fn by_assertion(
    state: &AppState,
    catalog: &Catalog,
    client_id: &str,
    jwt: &str,
) -> Result<(Arc<Client>, Option<String>), Failure> {
    let now = now();
    let (Some(client), Some(keys)) = (
        catalog.clients.get(client_id),
        catalog.assertion_keys.get(client_id),
    ) else {
        // Unknown, or without private_key_jwt: the same answer, so that neither is told.
        return Err(refused(
            "no credential of this client verifies the client assertion",
        ));
    };
    let keys: Vec<AssertionKey<'_>> = keys
        .iter()
        .filter(|k| k.is_active(now))
        .map(|k| AssertionKey {
            credential_id: &k.credential_id,
            kid: &k.kid,
            alg: k.alg,
            key: &k.key,
        })
        .collect();
    let issuer = state.config.issuer.as_str();
    let endpoint = state.config.token_endpoint();
    let audiences = [issuer, issuer.trim_end_matches('/'), endpoint.as_str()];
    let verified = assertion::verify(
        jwt,
        &keys,
        &Expectations {
            client_id,
            audiences: &audiences,
            now,
        },
    )
    .map_err(Failure::Refused)?;
    let fresh = replay::use_once(
        state,
        UseOnce::assertion(client_id, &verified.jti, verified.replay_until),
        now,
    )
    .await
    .map_err(Failure::Internal)?;
    if !fresh {
        return Err(refused(
            "this client assertion was used before: make a new one (a new jti) per request",
        ));
    }
    Ok((client.clone(), Some(verified.credential_id)))
}
