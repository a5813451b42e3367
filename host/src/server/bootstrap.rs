//! The first management client: on first start, so that the management API can be used
//! at all. Its credentials come from `TOKENHOST_BOOTSTRAP_CLIENT_ID` and
//! `TOKENHOST_BOOTSTRAP_CLIENT_SECRET`, or are generated, printed once and saved (mode
//! 0600) as `bootstrap-client.json` in the data directory.

use serde_json::json;

use super::management::scopes::MANAGEMENT_SCOPES;
use super::state::{now, AppState, StateError};
use crate::credentials::{generate_id, generate_secret};
use crate::datadir::{self, BOOTSTRAP_FILE};
use crate::store::{Client, ClientGrant, SecretHash, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    DataDir(#[from] datadir::DataDirError),
    #[error("{0}")]
    Other(String),
}

/// Creates the bootstrap client if there is no client at all. Blocking.
pub fn ensure(
    state: &AppState,
    id: Option<String>,
    secret: Option<String>,
) -> Result<(), BootstrapError> {
    if !state.store.list_clients()?.is_empty() {
        return Ok(());
    }
    create(state, id, secret)
}

/// `tokenhost admin reset-bootstrap`: a new management client with every scope, whatever
/// clients exist, for an installation whose administrators are locked out. Blocking.
pub fn reset(
    state: &AppState,
    id: Option<String>,
    secret: Option<String>,
) -> Result<(), BootstrapError> {
    if let Some(id) = &id {
        if state.store.get_client(id)?.is_some() {
            return Err(BootstrapError::Other(format!(
                "a client {id} exists already: unset TOKENHOST_BOOTSTRAP_CLIENT_ID to have a \
                 new id generated, or name another"
            )));
        }
    }
    create(state, id, secret)
}

fn create(
    state: &AppState,
    id: Option<String>,
    secret: Option<String>,
) -> Result<(), BootstrapError> {
    let generated = secret.is_none();
    let random = |f: fn() -> Result<String, _>| {
        f().map_err(|e: crate::credentials::RandomError| BootstrapError::Other(e.to_string()))
    };
    let client_id = match id {
        Some(id) => id,
        None => random(|| generate_id(""))?,
    };
    let client_secret = match secret {
        Some(secret) => secret,
        None => random(generate_secret)?,
    };
    let audience = state.config.management_audience();
    let client = Client {
        client_id: client_id.clone(),
        name: "tokenhost bootstrap (management)".into(),
        client_metadata: Default::default(),
        app_type: "non_interactive".into(),
        secrets: vec![SecretHash {
            hash: state.hasher.hash(&client_secret),
            expires_at: None,
        }],
        created_at: now(),
        token_rate_limit: None,
        authentication: Default::default(),
        credentials: Vec::new(),
    };
    let grant = ClientGrant {
        id: random(|| generate_id("cgr_"))?,
        client_id: client_id.clone(),
        audience: audience.clone(),
        scope: MANAGEMENT_SCOPES.iter().map(|s| s.to_string()).collect(),
        created_at: now(),
    };
    // Together: a client stored without its grant would stop the next start from making
    // one (there is a client), and nobody could use the management API.
    state.store.transaction(|tx| {
        tx.put_client(&client)?;
        tx.put_client_grant(&grant)
    })?;
    state.apply_committed()?;
    if generated {
        let path = state.config.data_dir.join(BOOTSTRAP_FILE);
        let record = json!({
            "client_id": client_id,
            "client_secret": client_secret,
            "audience": audience,
            "token_endpoint": state.config.token_endpoint(),
        });
        let text = serde_json::to_string_pretty(&record)
            .map_err(|e| BootstrapError::Other(e.to_string()))?;
        datadir::write_private(&path, text.as_bytes())?;
        println!(
            "tokenhost: created the bootstrap management client (saved in {}):",
            path.display()
        );
        println!("  client_id:     {client_id}");
        println!("  client_secret: {client_secret}");
        println!("  audience:      {audience}");
    } else {
        println!(
            "tokenhost: created the bootstrap management client {client_id} from the environment"
        );
    }
    Ok(())
}
