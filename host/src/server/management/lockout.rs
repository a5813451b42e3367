//! No lock-out: a change that would leave no client able to make administrators (to create
//! clients and grant them scopes on the management API) is refused with 409. Otherwise one
//! request could shut every administrator out for good; `tokenhost admin reset-bootstrap`
//! is the way back for an installation locked out some other way.

use super::scopes::{CREATE_CLIENTS, CREATE_CLIENT_GRANTS};
use crate::server::api_error::ApiError;
use crate::server::state::AppState;
use crate::store::ClientGrant;

/// The scopes with which a client can make any other administrator.
const ADMINISTRATOR: &[&str] = &[CREATE_CLIENTS, CREATE_CLIENT_GRANTS];

/// The change whose outcome is checked.
pub(super) enum Proposed<'a> {
    DeleteGrant(&'a str),
    UpdateGrant(&'a ClientGrant),
    DeleteClient(&'a str),
}

/// `Err(409)` if, after `change`, no grant on the management API would hold
/// [`ADMINISTRATOR`] while one holds it now. Blocking; call it inside
/// [`across_nodes`](super::across_nodes), with the commit of the change.
pub(super) fn keeps_an_administrator(
    state: &AppState,
    change: Proposed<'_>,
) -> Result<(), ApiError> {
    let audience = state.config.management_audience();
    let administers = |g: &ClientGrant| {
        g.audience == audience && ADMINISTRATOR.iter().all(|s| g.scope.iter().any(|h| h == s))
    };
    let grants = state.store.list_client_grants()?;
    if !grants.iter().any(administers) {
        return Ok(());
    }
    let remains = grants.iter().any(|g| {
        let after = match change {
            Proposed::DeleteGrant(id) if g.id == id => return false,
            Proposed::DeleteClient(client) if g.client_id == client => return false,
            Proposed::UpdateGrant(updated) if g.id == updated.id => updated,
            _ => g,
        };
        administers(after)
    });
    if remains {
        Ok(())
    } else {
        Err(ApiError::conflict(format!(
            "this would leave no client able to manage clients and grants (scopes {}); \
             grant them to another client first",
            ADMINISTRATOR.join(" and ")
        )))
    }
}
