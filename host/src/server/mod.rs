//! The HTTP server: the token endpoint, discovery, and the management API.
//!
//! `app` builds the router from a ready [`AppState`]; `serve` does the start-up around it
//! (data directory, store, keys, rules, bootstrap client) and runs until SIGINT/SIGTERM.

pub mod api_error;
mod auth_failures;
mod bootstrap;
mod catalog;
pub mod client_ip;
pub mod cluster;
mod console;
mod discovery;
mod issuance;
pub mod management;
pub mod metrics;
pub mod oauth_error;
pub mod rate_limit;
pub mod request_id;
pub mod rule_logs;
pub mod state;
mod token;
pub mod token_request;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::credentials::SecretHasher;
use crate::datadir::{self, ServerKey};
use crate::rules::{ArtifactKey, RuleEngine};
use crate::store::{SqliteStore, Store};

pub use state::AppState;

/// The whole router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/oauth/token", post(token::token))
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::oauth_metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v2", management::router(&state))
        .merge(console::router())
        .fallback(|| async { api_error::ApiError::not_found("This endpoint") })
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(request_id::middleware))
        .with_state(state)
}

/// Ready when the store answers, the rules are compiled and the JS compiler is warm;
/// otherwise 503 with the reason.
async fn ready(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    if let Some(reason) = state.not_ready_reason() {
        return (StatusCode::SERVICE_UNAVAILABLE, reason);
    }
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "store unreachable"),
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    DataDir(#[from] datadir::DataDirError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Engine(#[from] crate::rules::EngineError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::BootstrapError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the master key (TOKENHOST_MASTER_KEY) is not the one this database was set up with: \
         every node of a cluster must be given the same master key"
    )]
    MasterKeyMismatch,
    #[error("{0}")]
    Other(String),
}

/// Who makes the first management client, if there is none: `TOKENHOST_BOOTSTRAP_CLIENT_ID`
/// and `TOKENHOST_BOOTSTRAP_CLIENT_SECRET`, or generated.
#[derive(Debug, Default)]
pub struct Bootstrap {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Make a new bootstrap client even though clients exist (`admin reset-bootstrap`).
    pub reset: bool,
}

impl Bootstrap {
    pub fn from_env() -> Bootstrap {
        let var = |name| std::env::var(name).ok().filter(|s: &String| !s.is_empty());
        Bootstrap {
            client_id: var("TOKENHOST_BOOTSTRAP_CLIENT_ID"),
            client_secret: var("TOKENHOST_BOOTSTRAP_CLIENT_SECRET"),
            reset: false,
        }
    }
}

/// Opens the store `config` names: the shared PostgreSQL database, or the data directory's
/// SQLite file. Blocking.
fn open_store(config: &Config, node: &str) -> Result<Arc<dyn Store>, ServeError> {
    let store: Arc<dyn Store> = match &config.database_url {
        Some(url) => Arc::new(crate::store::PgStore::connect(url, node)?),
        None => Arc::new(SqliteStore::open(
            &config.data_dir.join(datadir::DATABASE_FILE),
        )?),
    };
    Ok(store)
}

/// A node whose master key is not the one its store was set up with would fail on every
/// sealed secret and stored client secret: it refuses to start instead. The store keeps
/// only a check value derived from the key.
fn check_master_key(config: &Config, store: &dyn Store) -> Result<(), ServeError> {
    let Some(master) = config.master_key() else {
        return Ok(());
    };
    let matches = match store.cluster() {
        Some(cluster) => cluster.master_key_matches(&master.check_value())?,
        None => datadir::master_key_matches(&config.data_dir, &master.check_value())?,
    };
    if matches {
        Ok(())
    } else {
        Err(ServeError::MasterKeyMismatch)
    }
}

/// Builds the state from `config`: data directory, keys, store, rules, and the first
/// management client if there is none; with a shared store, also what it hears from the
/// other nodes from before the catalog was read. With a shared store, nodes starting at once do the
/// one-time set-up (keys, bootstrap client) one after the other. Blocking.
pub fn build_state(
    config: Config,
    node: &str,
    bootstrap: Bootstrap,
) -> Result<(AppState, Option<cluster::Events>), ServeError> {
    datadir::ensure(&config.data_dir)?;
    let artifact_key =
        ArtifactKey::from_bytes(&datadir::server_key(&config, ServerKey::Artifacts)?);
    let hasher = SecretHasher::new(&datadir::server_key(&config, ServerKey::SecretHashes)?);
    let store = open_store(&config, node)?;
    check_master_key(&config, store.as_ref())?;
    // Listening before the first catalog is read, so that no change committed meanwhile
    // is missed, and the listener's first `Connected` needs no second full read.
    let events = match store.cluster() {
        Some(cluster) => Some(cluster::listening(cluster)?),
        None => None,
    };
    let engine = Arc::new(RuleEngine::new(config.limits.clone())?);
    // Run once, by the closure below (which the lock's signature makes an FnMut).
    let mut parts = Some((config, hasher, artifact_key, bootstrap));
    let mut set_up = || -> Result<AppState, ServeError> {
        let (config, hasher, artifact_key, bootstrap) = parts
            .take()
            .ok_or_else(|| ServeError::Other("start-up ran twice".into()))?;
        let state = AppState::new(config, store.clone(), engine.clone(), hasher, artifact_key)?;
        if bootstrap.reset {
            bootstrap::reset(&state, bootstrap.client_id, bootstrap.client_secret)?;
        } else {
            bootstrap::ensure(&state, bootstrap.client_id, bootstrap.client_secret)?;
        }
        Ok(state)
    };
    let Some(cluster) = store.cluster() else {
        return Ok((set_up()?, None));
    };
    let mut built = None;
    cluster.exclusively(&mut || {
        // The store's error type is what the lock passes through; the start-up's own
        // error is kept aside.
        built = Some(set_up());
        Ok(())
    })?;
    let state = built.ok_or_else(|| ServeError::Other("start-up did not run".into()))??;
    Ok((state, events))
}

/// `tokenhost admin reset-bootstrap`: opens the store as the server does, and adds a new
/// management client with every scope (credentials from `TOKENHOST_BOOTSTRAP_CLIENT_ID` and
/// `_SECRET`, or generated, printed and saved). Blocking.
pub fn reset_bootstrap(config: Config) -> Result<(), ServeError> {
    let node = cluster::node_id()?;
    let bootstrap = Bootstrap {
        reset: true,
        ..Bootstrap::from_env()
    };
    build_state(config, &node, bootstrap)?;
    Ok(())
}

/// Runs the server until SIGINT or SIGTERM, then drains in-flight requests.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let listen = config.listen;
    let node = cluster::node_id()?;
    let starting = node.clone();
    let state =
        tokio::task::spawn_blocking(move || build_state(config, &starting, Bootstrap::from_env()))
            .await
            .map_err(|e| ServeError::Other(e.to_string()))??;
    let (state, events) = state;
    if let Some(events) = events {
        cluster::start(&state, &node, events);
    }

    state.logs.start(state.store.clone());
    management::audit::keep_within_retention(&state).await;

    // Ready the JS compiler now rather than on the first upload.
    let warming = state.clone();
    tokio::task::spawn_blocking(move || match warming.engine.warm_up() {
        Ok(()) => warming.mark_compiler_ready(),
        Err(e) => {
            tracing::error!(error = %e, "the JS rule compiler failed to start: rule uploads will fail");
        }
    });

    // Rate-limiter state of clients and addresses gone quiet is dropped now and then.
    let limits = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            limits.rate_limits.maintain();
        }
    });

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: listen,
        source,
    })?;
    println!(
        "tokenhost listening on http://{local} (issuer {})",
        state.config.issuer
    );
    tracing::info!(%local, issuer = %state.config.issuer, "listening");
    let logs = state.logs.clone();
    let state_at_exit = state.clone();
    let served = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| ServeError::Other(e.to_string()));
    // The last requests' rule log entries are still in the recorder's buffer.
    logs.flush().await;
    cluster::leave(&state_at_exit, &node).await;
    served
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
