//! Binding the token to the client's key (DPoP, RFC 9449): a valid proof at the token
//! endpoint makes the token carry `cnf.jkt`, the proof key's thumbprint, and `token_type`
//! `DPoP`. A client registered with `dpop_bound_access_tokens` must send one.

use super::replay::{self, UseOnce};
use super::Refusal;
use crate::client_auth::dpop;
use crate::server::state::{now, AppState};
use crate::server::token_request::TokenRequest;
use crate::store::Client;

/// The key a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// RFC 7638 SHA-256 thumbprint of the proof's public key.
    pub jkt: String,
}

/// Checks the request's DPoP proof, if any, and uses its `jti` up.
pub(super) async fn binding(
    state: &AppState,
    request: &TokenRequest,
    client: &Client,
) -> Result<Option<Binding>, Refusal> {
    let Some(proof) = request.dpop.as_deref() else {
        if client.authentication.dpop_bound_access_tokens {
            return Err(Refusal::InvalidDpopProof(
                "this client's tokens are DPoP-bound (dpop_bound_access_tokens): send a DPoP \
                 proof header"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let now = now();
    let checked = dpop::verify(proof, "POST", &state.config.token_endpoint(), now)
        .map_err(Refusal::InvalidDpopProof)?;
    let fresh = replay::use_once(
        state,
        UseOnce::dpop(&checked.jkt, &checked.jti, checked.replay_until),
        now,
    )
    .await
    .map_err(|cause| Refusal::Internal { cause })?;
    if !fresh {
        return Err(Refusal::InvalidDpopProof(
            "this DPoP proof was used before: make a new one (a new jti) per request".into(),
        ));
    }
    Ok(Some(Binding { jkt: checked.jkt }))
}
