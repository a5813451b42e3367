//! Who is calling the management API and what it may do now: a bearer token tokenhost
//! itself issued for the management audience, its scopes narrowed to what the client's
//! grant holds at this moment, and the scope a handler needs checked before its body is
//! read.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::gate::Verified;
use super::scopes::Scope;
use crate::keys::{KeyError, Rejection};
use crate::server::api_error::ApiError;
use crate::server::catalog::Catalog;
use crate::server::state::{now, AppState};

/// A verified management caller, as the catalog saw it when it was checked.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The management client's id (the token's `client_id`).
    pub client_id: String,
    /// The token's scopes that the client's grant on the management API still holds: a
    /// grant narrowed or revoked applies to tokens already issued, at once.
    pub scopes: Vec<String>,
    /// What the token itself says, so that a long request (a log stream) can check its
    /// caller again.
    token: TokenClaims,
}

#[derive(Debug, Clone)]
struct TokenClaims {
    scopes: Vec<String>,
    expires_at: i64,
}

impl Caller {
    /// The caller of a request: 401 `invalid_token` unless its bearer token is valid now
    /// and its client still exists with a grant on the management API.
    pub(super) fn from_parts(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("Missing authentication: send Authorization: Bearer <token>")
            })?;
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| ApiError::unauthorized("Bad authorization scheme: expected Bearer"))?;
        let catalog = state.catalog();
        let audience = state.config.management_audience();
        let claims = catalog
            .keys
            .verify(token, &state.config.issuer, &audience)
            .map_err(|e| ApiError::unauthorized(refusal(&e, &state.config.issuer, &audience)))?;
        if claims.contains_key("cnf") {
            // Sent as a bearer token, a DPoP-bound one would lose its binding.
            return Err(ApiError::unauthorized(
                "This token is DPoP-bound (cnf): the management API takes bearer tokens; \
                 request one without a DPoP proof",
            ));
        }
        let client_id = claims
            .get("client_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let scopes = claims
            .get("scope")
            .and_then(|v| v.as_str())
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let expires_at = claims
            .get("exp")
            .and_then(|v| v.as_i64())
            .unwrap_or_default();
        let token = TokenClaims { scopes, expires_at };
        Caller::authorize(&catalog, &audience, client_id, token, now())
    }

    /// What a token's claims allow against `catalog` at `now`.
    fn authorize(
        catalog: &Catalog,
        audience: &str,
        client_id: String,
        token: TokenClaims,
        now: i64,
    ) -> Result<Caller, ApiError> {
        // The verifier allows other servers' clocks some skew past `exp`; here the issuer
        // checks its own token with its own clock, so the token ends exactly at `exp`.
        if now >= token.expires_at {
            return Err(ApiError::unauthorized("Invalid token: it has expired"));
        }
        if !catalog.clients.contains_key(&client_id) {
            return Err(ApiError::unauthorized(
                "Invalid token: its client no longer exists",
            ));
        }
        let grant = catalog.grant(&client_id, audience).ok_or_else(|| {
            ApiError::unauthorized(
                "Invalid token: its client's grant on the management API was revoked",
            )
        })?;
        let scopes = token
            .scopes
            .iter()
            .filter(|s| grant.scope.contains(s))
            .cloned()
            .collect();
        Ok(Caller {
            client_id,
            scopes,
            token,
        })
    }

    /// The same token checked again against the current catalog and clock: refused once
    /// its client is deleted, its grant revoked or the token expired.
    pub fn recheck(&self, state: &AppState) -> Result<Caller, ApiError> {
        Caller::authorize(
            &state.catalog(),
            &state.config.management_audience(),
            self.client_id.clone(),
            self.token.clone(),
            now(),
        )
    }

    pub fn holds(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// 403 `insufficient_scope` unless the caller holds `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.holds(scope) {
            Ok(())
        } else {
            Err(ApiError::insufficient_scope(scope))
        }
    }

    /// 403 `insufficient_scope`, naming the scopes the caller lacks, unless it holds every
    /// one of `scopes`: no caller hands out a management scope it does not hold itself.
    pub fn may_hand_out(&self, scopes: &[String]) -> Result<(), ApiError> {
        let lacking: Vec<&str> = scopes
            .iter()
            .filter(|s| !self.holds(s))
            .map(String::as_str)
            .collect();
        if lacking.is_empty() {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!(
                "Cannot hand out management scopes the caller does not hold: {}",
                lacking.join(" ")
            ),
        ))
    }

    /// As [`Caller::may_hand_out`] for every management scope `client_id` is granted:
    /// whoever learns a client's secret can act as that client.
    pub fn may_act_as(&self, state: &AppState, client_id: &str) -> Result<(), ApiError> {
        match state
            .catalog()
            .grant(client_id, &state.config.management_audience())
        {
            Some(grant) => self.may_hand_out(&grant.scope),
            None => Ok(()),
        }
    }
}

/// Why a management token did not verify, in words its holder can act on: never the
/// verifier's internals, never the token.
fn refusal(error: &KeyError, issuer: &str, audience: &str) -> String {
    let reason = match error {
        KeyError::Verify(Rejection::WrongAudience) => {
            format!("it was issued for another audience; the management API's is {audience}")
        }
        KeyError::Verify(Rejection::WrongIssuer) => {
            format!("it was issued by another server; this one is {issuer}")
        }
        KeyError::Verify(rejection) => rejection.to_string(),
        KeyError::UnknownKid(_) => "it is signed by a key this server does not know \
            (another server's token, or one whose key was retired)"
            .to_string(),
        _ => "it cannot be verified".to_string(),
    };
    format!("Invalid token: {reason}")
}

/// A caller holding the scope `S`, checked from the request's head. axum runs every
/// `FromRequestParts` extractor before the one that reads the body, so a caller without
/// the scope gets 403 and learns nothing of how its body would have been read.
pub struct Authorized<S> {
    caller: Caller,
    scope: PhantomData<fn() -> S>,
}

impl<S> Authorized<S> {
    pub fn into_caller(self) -> Caller {
        self.caller
    }
}

impl<S> Deref for Authorized<S> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<S: Scope> FromRequestParts<AppState> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The gate in front of every management route verified the token already.
        let caller = match parts.extensions.get::<Verified>() {
            Some(Verified(verified)) => verified.clone()?,
            None => Caller::from_parts(parts, state)?,
        };
        caller.require(S::NAME)?;
        Ok(Authorized {
            caller,
            scope: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{Client, ClientGrant};

    const AUD: &str = "http://t.test/api/v2/";

    fn catalog(grant: Option<&[&str]>) -> Catalog {
        let client = Client {
            client_id: "c1".into(),
            name: "c1".into(),
            client_metadata: Default::default(),
            app_type: "non_interactive".into(),
            secrets: Vec::new(),
            created_at: 0,
            token_rate_limit: None,
            authentication: Default::default(),
            credentials: Vec::new(),
        };
        let mut catalog = Catalog::empty().unwrap();
        catalog.clients.insert("c1".to_string(), Arc::new(client));
        if let Some(scopes) = grant {
            catalog.grants.put(ClientGrant {
                id: "cgr_1".into(),
                client_id: "c1".into(),
                audience: AUD.into(),
                scope: scopes.iter().map(|s| s.to_string()).collect(),
                created_at: 0,
            });
        }
        catalog
    }

    fn token(scopes: &[&str], expires_at: i64) -> TokenClaims {
        TokenClaims {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at,
        }
    }

    #[test]
    fn the_caller_holds_only_what_both_its_token_and_its_grant_say() {
        let catalog = catalog(Some(&["read:clients", "read:rules"]));
        let caller = Caller::authorize(
            &catalog,
            AUD,
            "c1".into(),
            token(&["read:clients", "update:clients"], 100),
            50,
        )
        .unwrap();
        assert_eq!(caller.scopes, ["read:clients"]);
        assert!(caller.may_hand_out(&["read:clients".into()]).is_ok());
        let refused = caller
            .may_hand_out(&["read:clients".into(), "read:rules".into()])
            .unwrap_err();
        assert_eq!(refused.status_code, 403);
        assert!(refused.message.ends_with(": read:rules"), "{refused:?}");
    }

    #[test]
    fn no_grant_an_unknown_client_or_an_expired_token_is_a_401() {
        let refused = |catalog: &Catalog, client: &str, exp: i64| {
            Caller::authorize(
                catalog,
                AUD,
                client.into(),
                token(&["read:clients"], exp),
                50,
            )
            .unwrap_err()
        };
        let revoked = refused(&catalog(None), "c1", 100);
        assert_eq!(revoked.status_code, 401);
        assert!(revoked.message.contains("revoked"), "{revoked:?}");
        let granted = catalog(Some(&["read:clients"]));
        assert!(refused(&granted, "gone", 100)
            .message
            .contains("no longer exists"));
        // `exp` is the first second the token is no longer valid.
        assert!(refused(&granted, "c1", 50).message.contains("expired"));
    }

    #[test]
    fn a_refused_token_is_explained_without_the_verifiers_words() {
        let said = |e: KeyError| refusal(&e, "https://t.test/", AUD);
        assert_eq!(
            said(KeyError::Verify(Rejection::Expired)),
            "Invalid token: it has expired"
        );
        assert_eq!(
            said(KeyError::Verify(Rejection::WrongAudience)),
            format!(
                "Invalid token: it was issued for another audience; the management API's is {AUD}"
            )
        );
        let unknown = said(KeyError::UnknownKid("kid-from-the-token".into()));
        assert!(
            unknown.contains("a key this server does not know"),
            "{unknown}"
        );
        assert!(!unknown.contains("kid-from-the-token"), "{unknown}");
        let malformed = said(KeyError::Verify(Rejection::Malformed));
        assert_eq!(malformed, "Invalid token: it is not a well-formed JWT");
    }
}
