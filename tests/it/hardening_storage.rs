//! What the data directory holds, against the real binary: private signing keys sealed at
//! rest (an existing database's sealed on its first start), files readable by their owner
//! only, a management change stored with its audit record or not at all, an API deleted
//! with its grants or not at all, and the audit trail's retention.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use tests::server::{TestServer, ISSUER};

const API: &str = "https://storage.example.com/";

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

fn db_file(server: &TestServer, suffix: &str) -> PathBuf {
    server.data_dir.join(format!("tokenhost.db{suffix}"))
}

/// A second connection to the server's database, as an operator's sqlite3 would open it.
fn open_db(server: &TestServer) -> Connection {
    let conn = Connection::open(db_file(server, "")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A signing key as a release before sealing stored it: DER in the clear.
struct LegacyKey {
    kid: String,
    alg: &'static str,
    state: &'static str,
    der: Vec<u8>,
    public_jwk: Value,
}

fn legacy_key(alg: &'static str, state: &'static str) -> LegacyKey {
    let rng = SystemRandom::new();
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let kid = format!("legacy-{alg}-{state}");
    let (der, mut public_jwk) = match alg {
        "ES256" => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .unwrap()
                .as_ref()
                .to_vec();
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
            let point = pair.public_key().as_ref();
            let jwk = json!({"kty": "EC", "crv": "P-256",
                "x": b64(&point[1..33]), "y": b64(&point[33..65])});
            (pkcs8, jwk)
        }
        "EdDSA" => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                .unwrap()
                .as_ref()
                .to_vec();
            let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
            (pkcs8, jwk)
        }
        other => panic!("no legacy {other} key in this test"),
    };
    public_jwk["kid"] = json!(kid);
    public_jwk["alg"] = json!(alg);
    public_jwk["use"] = json!("sig");
    LegacyKey {
        kid,
        alg,
        state,
        der,
        public_jwk,
    }
}

/// Turns the stopped server's database into one a release before sealing left (migration
/// 0006 and those after undone, if this build has them) whose signing keys are `keys`, in the clear.
fn plant_legacy_keys(server: &TestServer, keys: &[LegacyKey]) {
    let conn = open_db(server);
    let sealing_schema: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('signing_keys')
             WHERE name = 'private_format'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    if sealing_schema {
        // Migration 0007 (client credentials, the replay cache) first: it came later.
        conn.execute_batch(
            "DROP TABLE IF EXISTS replay_cache;
             ALTER TABLE clients DROP COLUMN authentication;
             ALTER TABLE clients DROP COLUMN credentials;
             DROP INDEX audit_log_at;
             ALTER TABLE signing_keys DROP COLUMN private_format;
             ALTER TABLE signing_keys RENAME COLUMN private_key TO private_der;",
        )
        .unwrap();
        // Migrations 0001 to 0005 applied.
        conn.pragma_update(None, "user_version", 5).unwrap();
    }
    conn.execute("DELETE FROM signing_keys", []).unwrap();
    for key in keys {
        conn.execute(
            "INSERT INTO signing_keys (kid, alg, state, private_der, public_jwk, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                key.kid,
                key.alg,
                key.state,
                key.der,
                key.public_jwk.to_string(),
                now() - 60
            ],
        )
        .unwrap();
    }
}

/// Does any of aws-lc-rs's private-key parsers accept `bytes`?
fn parses_as_private_key(bytes: &[u8]) -> bool {
    RsaKeyPair::from_der(bytes).is_ok()
        || RsaKeyPair::from_pkcs8(bytes).is_ok()
        || EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, bytes).is_ok()
        || EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, bytes).is_ok()
        || Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes).is_ok()
}

/// The files of the database (with its WAL and WAL index, as the stopped server left them)
/// that hold any 16-byte piece of `der` past its ASN.1 header: a stale copy in a free page
/// or an old WAL frame shows up here even if no row holds it.
fn files_holding(server: &TestServer, der: &[u8]) -> Vec<String> {
    let pieces: Vec<&[u8]> = der[16..].chunks_exact(16).collect();
    ["", "-wal", "-shm"]
        .into_iter()
        .filter(|suffix| {
            std::fs::read(db_file(server, suffix))
                .is_ok_and(|bytes| bytes.windows(16).any(|window| pieces.contains(&window)))
        })
        .map(|suffix| format!("tokenhost.db{suffix}"))
        .collect()
}

/// A token for `API` from a client of an ES256 API, checked as a third party verifying
/// with the JWKS does, and its header's kid.
async fn es256_token(server: &TestServer, client: &(String, String)) -> (String, String) {
    let (status, body, _) = server.client_token(&client.0, &client.1, API).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let claims = server.verify(&token, API).await;
    assert_eq!(claims["aud"], API);
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    (token, kid)
}

#[tokio::test]
async fn an_existing_database_gets_its_signing_keys_sealed_and_still_signs() {
    let mut server = TestServer::start(&[]);
    server.stop_and_logs();
    let legacy: Vec<LegacyKey> = [
        ("ES256", "current"),
        ("ES256", "next"),
        ("EdDSA", "current"),
        ("EdDSA", "next"),
    ]
    .into_iter()
    .map(|(alg, state)| legacy_key(alg, state))
    .collect();
    plant_legacy_keys(&server, &legacy);
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        // As the umask left them before files were made owner-only.
        let _ = std::fs::set_permissions(
            db_file(&server, suffix),
            std::fs::Permissions::from_mode(0o644),
        );
    }

    // The first start of this release on that database.
    server.restart();
    let admin = server.admin_token().await;
    let client = server
        .setup_client(&admin, API, "ES256", &["read"], json!({}))
        .await;
    let (before_restart, kid) = es256_token(&server, &client).await;
    assert_eq!(kid, "legacy-ES256-current", "the legacy key signs");

    // A second start reads nothing but sealed keys, and signs with the same key.
    let sealing_run_logs = server.restart();
    let (_, kid) = es256_token(&server, &client).await;
    assert_eq!(kid, "legacy-ES256-current");
    server.verify(&before_restart, API).await;
    let jwks = server.get_json("/.well-known/jwks.json").await;
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    for key in &legacy {
        assert!(published.contains(&key.kid.as_str()), "{published:?}");
    }
    server.stop_and_logs();

    // No piece of a legacy key is left anywhere in the files, not even in free pages or
    // old WAL frames (read before a connection of ours checkpoints the WAL).
    for key in &legacy {
        let holding = files_holding(&server, &key.der);
        assert!(holding.is_empty(), "{} found in {holding:?}", key.kid);
    }
    // And no private key column of any row, those the server made itself included, is a
    // key any parser accepts.
    let conn = open_db(&server);
    let mut stmt = conn.prepare("SELECT * FROM signing_keys").unwrap();
    let columns = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    let (mut keys, mut blobs) = (0, 0);
    while let Some(row) = rows.next().unwrap() {
        keys += 1;
        for i in 0..columns {
            if let rusqlite::types::ValueRef::Blob(bytes) = row.get_ref(i).unwrap() {
                blobs += 1;
                assert!(
                    !parses_as_private_key(bytes),
                    "signing key {:?} is stored as a readable private key",
                    row.get_ref(0).unwrap().as_str()
                );
            }
        }
    }
    // Current and next of each algorithm (RS256's made by the server).
    assert!(keys >= 6 && blobs == keys, "{keys} keys, {blobs} blobs");
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        let path = db_file(&server, suffix);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "tokenhost.db{suffix} was not tightened");
        }
    }
    // The operator is told.
    assert!(
        sealing_run_logs.contains("sealed the signing keys stored in the clear"),
        "{sealing_run_logs}"
    );
}

#[tokio::test]
async fn data_directory_files_are_owner_only() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    server
        .setup_client(&admin, API, "RS256", &["read"], json!({}))
        .await;
    #[cfg(unix)]
    {
        assert_eq!(mode(&server.data_dir), 0o700);
        // The WAL and its index exist while the server runs.
        for suffix in ["", "-wal", "-shm"] {
            assert_eq!(
                mode(&db_file(&server, suffix)),
                0o600,
                "tokenhost.db{suffix}"
            );
        }
        for name in [
            "artifact.key",
            "secret-hash.key",
            "secrets.key",
            "signing-keys.key",
        ] {
            let path = server.data_dir.join(name);
            assert_eq!(std::fs::read(&path).unwrap().len(), 32, "{name}");
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
}

#[tokio::test]
async fn a_change_whose_audit_record_fails_is_refused_and_not_applied() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let conn = open_db(&server);
    conn.execute_batch(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
         BEGIN SELECT RAISE(ABORT, 'the audit trail is unavailable'); END;",
    )
    .unwrap();

    let (status, body) = server
        .api(
            &admin,
            Method::POST,
            "/clients",
            Some(json!({"name": "unaudited"})),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["statusCode"], 500, "{body}");
    assert_eq!(body["errorCode"], "internal_error", "{body}");
    assert!(body["message"].is_string(), "{body}");
    let (status, body) = server
        .api(
            &admin,
            Method::POST,
            "/resource-servers",
            Some(json!({"identifier": API})),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");

    // Neither change was made.
    let (_, clients) = server.api(&admin, Method::GET, "/clients", None).await;
    let names: Vec<&str> = clients
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"unaudited"), "{names:?}");
    let (_, apis) = server
        .api(&admin, Method::GET, "/resource-servers", None)
        .await;
    assert!(
        apis.as_array()
            .unwrap()
            .iter()
            .all(|a| a["identifier"] != API),
        "{apis}"
    );

    // With the trail back, the same change is made and recorded.
    conn.execute_batch("DROP TRIGGER refuse_audit").unwrap();
    let (status, client) = server
        .api(
            &admin,
            Method::POST,
            "/clients",
            Some(json!({"name": "audited"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let id = client["client_id"].as_str().unwrap();
    let (_, trail) = server
        .api(
            &admin,
            Method::GET,
            &format!("/audit?target_type=client&target_id={id}"),
            None,
        )
        .await;
    assert_eq!(trail.as_array().unwrap().len(), 1, "{trail}");
}

#[tokio::test]
async fn an_api_is_deleted_with_its_grants_or_not_at_all() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "RS256", &["read"], json!({}))
        .await;
    let (_, apis) = server
        .api(&admin, Method::GET, "/resource-servers", None)
        .await;
    let api_id = apis
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["identifier"] == API)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let grants_for_api = |grants: &Value| {
        grants
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["audience"] == API)
            .count()
    };

    // The API row refuses to go, after the grants would have.
    let conn = open_db(&server);
    conn.execute_batch(
        "CREATE TRIGGER keep_api BEFORE DELETE ON resource_servers
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    )
    .unwrap();
    let path = format!("/resource-servers/{api_id}");
    let (status, body) = server.api(&admin, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let (_, grants) = server
        .api(&admin, Method::GET, "/client-grants", None)
        .await;
    assert_eq!(
        grants_for_api(&grants),
        1,
        "the grant went without its API: {grants}"
    );
    let (status, _) = server.api(&admin, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = server.client_token(&id, &secret, API).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    conn.execute_batch("DROP TRIGGER keep_api").unwrap();
    let (status, body) = server.api(&admin, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, grants) = server
        .api(&admin, Method::GET, "/client-grants", None)
        .await;
    assert_eq!(grants_for_api(&grants), 0, "{grants}");
}

#[tokio::test]
async fn audit_entries_older_than_the_retention_are_pruned_at_start() {
    let mut server = TestServer::start(&[("TOKENHOST_AUDIT_RETENTION_DAYS", "30")]);
    let admin = server.admin_token().await;
    let (status, client) = server
        .api(
            &admin,
            Method::POST,
            "/clients",
            Some(json!({"name": "kept"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    server.stop_and_logs();
    let conn = open_db(&server);
    for (target_id, days_ago) in [("forty-days-old", 40), ("twenty-days-old", 20)] {
        conn.execute(
            "INSERT INTO audit_log (at, actor, action, target_type, target_id)
             VALUES (?1, 'someone', 'update', 'client', ?2)",
            params![now() - days_ago * 86_400, target_id],
        )
        .unwrap();
    }
    drop(conn);

    server.restart();
    let admin = server.admin_token().await;
    let (status, trail) = server
        .api(&admin, Method::GET, "/audit?limit=1000", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let targets: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target_id"].as_str().unwrap())
        .collect();
    assert!(!targets.contains(&"forty-days-old"), "{targets:?}");
    assert!(targets.contains(&"twenty-days-old"), "{targets:?}");
    assert!(
        targets.contains(&client["client_id"].as_str().unwrap()),
        "{targets:?}"
    );
}

#[tokio::test]
async fn a_truncated_key_file_stops_the_start_naming_the_file() {
    let mut server = TestServer::start(&[]);
    server.stop_and_logs();
    let key = server.data_dir.join("secret-hash.key");
    let whole = std::fs::read(&key).unwrap();
    std::fs::write(&key, &whole[..7]).unwrap();

    let mut child = Command::new(tests::tokenhost_bin())
        .arg("serve")
        .env("TOKENHOST_LISTEN", "127.0.0.1:0")
        .env("TOKENHOST_ISSUER", ISSUER)
        .env("TOKENHOST_DATA_DIR", &server.data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It must exit by itself; a server that started anyway is stopped and fails the test.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let status = status.unwrap_or_else(|| panic!("started with a truncated key: {stderr}"));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("7 bytes long, not a 32-byte key"),
        "{stderr}"
    );
    // Left for the operator to restore, not replaced by a new key.
    assert_eq!(std::fs::read(&key).unwrap().len(), 7);
}
