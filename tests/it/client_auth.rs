//! Client authentication without shared secrets, end to end with stock libraries: authlib's
//! `PrivateKeyJWT` gets tokens with RSA, EC and certificate credentials; crafted assertions
//! and DPoP proofs (joserfc, tests/client_auth.py) that must be refused are; a DPoP-bound
//! token's `cnf.jkt` is the proof key's thumbprint as joserfc computes it; an assertion used
//! on one node of a cluster is refused on another.

use std::path::PathBuf;
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::pg::Database;
use tests::repo;
use tests::server::{split, TestServer, ISSUER};

const API: &str = "https://pkjwt.example/api";

/// Copies what the rule is told of the client's proof into claims.
const PROOF_RULE: &str = r#"
module.exports = function (client, scope, audience, context, cb) {
  var auth = context.clientAuthentication;
  var token = { scope: scope };
  token['https://t.example/method'] = auth.method;
  token['https://t.example/credential'] = auth.credential_id;
  token['https://t.example/jkt'] = context.dpop ? context.dpop.jkt : null;
  cb(null, token);
};
"#;

fn token_endpoint() -> String {
    format!("{ISSUER}oauth/token")
}

/// Runs tests/client_auth.py; its stdout, trimmed.
fn py(args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg(repo().join("tests/client_auth.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "client_auth.py {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A fresh key pair for `alg` in a temporary directory (removed on drop).
struct Keys {
    dir: PathBuf,
    alg: &'static str,
}

impl Keys {
    fn new(alg: &'static str) -> Keys {
        let dir = std::env::temp_dir().join(format!(
            "tokenhost-client-auth-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        py(&["keygen", alg, dir.to_str().unwrap()]);
        Keys { dir, alg }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap()
    }

    fn private(&self) -> String {
        self.path("private.pem")
    }

    /// A client assertion for `client_id` (audience: the token endpoint), with `extra`
    /// options of `client_auth.py assertion`.
    fn assertion(&self, client_id: &str, extra: &[&str]) -> String {
        let private = self.private();
        let endpoint = token_endpoint();
        let mut args = vec!["assertion", client_id, &private, self.alg, &endpoint];
        args.extend_from_slice(extra);
        py(&args)
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Uploads `pem` as a credential of `client_id` and makes the client private_key_jwt only.
/// Returns the credential.
async fn use_key(server: &TestServer, admin: &str, client_id: &str, pem: &str, alg: &str) -> Value {
    let (status, credential) = server
        .api(
            admin,
            Method::POST,
            &format!("/clients/{client_id}/credentials"),
            Some(json!({"credential_type": "public_key", "name": "test key", "pem": pem, "alg": alg})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{credential}");
    let (status, client) = server
        .api(
            admin,
            Method::PATCH,
            &format!("/clients/{client_id}"),
            Some(json!({
                "token_endpoint_auth_method": null,
                "client_authentication_methods":
                    {"private_key_jwt": {"credentials": [{"id": credential["id"]}]}},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{client}");
    assert_eq!(client["token_endpoint_auth_method"], Value::Null);
    credential
}

/// authlib's OAuth2Session with PrivateKeyJWT, optionally with a DPoP proof of `dpop`'s key.
fn authlib_token(server: &TestServer, client_id: &str, keys: &Keys, dpop: Option<&Keys>) -> Value {
    let url = server.url("/oauth/token");
    let endpoint = token_endpoint();
    let private = keys.private();
    let mut args = vec!["token"];
    let dpop_key = dpop.map(Keys::private);
    if let Some(key) = &dpop_key {
        args.extend_from_slice(&["--dpop", key]);
    }
    // `--` first: a generated client_id may begin with `-`, which argparse reads as an option.
    args.extend_from_slice(&["--", &url, &endpoint, client_id, &private, keys.alg, API]);
    serde_json::from_str(&py(&args)).unwrap()
}

async fn post_assertion(server: &TestServer, assertion: &str) -> (StatusCode, Value) {
    post_assertion_for(server, assertion, API).await
}

#[tokio::test]
async fn authlib_gets_tokens_with_rsa_ec_and_certificate_credentials_and_the_secret_stops() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    for (alg, pem_file) in [
        ("RS256", "public.pem"),
        ("PS256", "public.pem"),
        ("ES256", "public.pem"),
        ("ES256", "cert.pem"),
        ("EdDSA", "public.pem"),
    ] {
        let keys = Keys::new(alg);
        let (id, secret) = server
            .setup_client(&admin, API, "ES256", &["read"], json!({}))
            .await;
        let credential = use_key(&server, &admin, &id, &keys.read(pem_file), alg).await;
        assert_eq!(credential["credential_type"], "public_key");
        assert_eq!(credential["alg"], alg);
        let thumbprint = py(&["thumbprint", &keys.path("public.pem"), alg]);
        assert_eq!(
            credential["kid"],
            thumbprint.as_str(),
            "{alg}: kid is the RFC 7638 thumbprint"
        );

        let answer = authlib_token(&server, &id, &keys, None);
        assert_eq!(answer["status"], 200, "{alg} {pem_file}: {answer}");
        let token = answer["body"]["access_token"].as_str().unwrap();
        assert_eq!(answer["body"]["token_type"], "Bearer");
        let claims = server.verify(token, API).await;
        assert_eq!(claims["client_id"], id.as_str());
        assert!(claims.get("cnf").is_none());

        // private_key_jwt only: the secret no longer works, and says why.
        let (status, body, _) = server.client_token(&id, &secret, API).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_client");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("private_key_jwt"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn credentials_are_listed_shown_and_deleted_and_a_deleted_one_verifies_nothing() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let keys = Keys::new("ES256");
    let (id, _) = server
        .setup_client(&admin, API, "ES256", &["read"], json!({}))
        .await;
    let credential = use_key(&server, &admin, &id, &keys.read("public.pem"), "ES256").await;
    let cid = credential["id"].as_str().unwrap();
    let path = format!("/clients/{id}/credentials");
    let (status, list) = server.api(&admin, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("pem").is_none(), "{list}");
    let (status, one) = server
        .api(&admin, Method::GET, &format!("{path}/{cid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["id"], cid);

    // The same key twice, a private key, a key that does not fit the alg, an unknown id.
    for (body, code) in [
        (
            json!({"credential_type": "public_key", "pem": keys.read("public.pem"), "alg": "ES256"}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"credential_type": "public_key", "pem": keys.read("private.pem"), "alg": "ES256"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"credential_type": "public_key", "pem": keys.read("public.pem"), "alg": "RS256"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"credential_type": "x509", "pem": keys.read("public.pem")}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, answer) = server.api(&admin, Method::POST, &path, Some(body)).await;
        assert_eq!(status, code, "{answer}");
    }
    let (status, answer) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/clients/{id}"),
            Some(json!({"client_authentication_methods": {"private_key_jwt": {"credentials": [{"id": "cred_nope"}]}}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    assert_eq!(authlib_token(&server, &id, &keys, None)["status"], 200);
    let (status, _) = server
        .api(&admin, Method::DELETE, &format!("{path}/{cid}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let answer = authlib_token(&server, &id, &keys, None);
    assert_eq!(answer["status"], 401, "{answer}");
    assert_eq!(answer["body"]["error"], "invalid_client");
}

#[tokio::test]
async fn bad_assertions_are_refused_with_invalid_client_and_count_as_failures() {
    let server = TestServer::start(&[("TOKENHOST_AUTH_FAILURE_BURST", "12")]);
    let admin = server.admin_token().await;
    let keys = Keys::new("RS256");
    let other = Keys::new("RS256");
    let (id, _) = server
        .setup_client(&admin, API, "ES256", &["read"], json!({}))
        .await;
    use_key(&server, &admin, &id, &keys.read("public.pem"), "RS256").await;

    let good = keys.assertion(&id, &[]);
    assert_eq!(post_assertion(&server, &good).await.0, StatusCode::OK);
    let public = keys.path("public.pem");
    let cases: Vec<(&str, String, &str)> = vec![
        ("replayed", good.clone(), "used before"),
        (
            "expired",
            keys.assertion(&id, &["--exp-in", "-120"]),
            "expired",
        ),
        (
            "too long-lived",
            keys.assertion(&id, &["--exp-in", "7200"]),
            "exp",
        ),
        (
            "issued too long ago",
            keys.assertion(&id, &["--iat-in", "-400"]),
            "too old",
        ),
        ("without exp", keys.assertion(&id, &["--no-exp"]), "exp"),
        (
            "issued in the future",
            keys.assertion(&id, &["--iat-in", "600"]),
            "iat",
        ),
        ("signed by another key", other.assertion(&id, &[]), "verif"),
        (
            "unsigned (alg none)",
            keys.assertion(&id, &["--unsigned"]),
            "none",
        ),
        (
            "HS256 keyed with the public key",
            keys.assertion(&id, &["--hmac-with", &public]),
            "HS256",
        ),
        (
            "for another audience",
            py(&[
                "assertion",
                &id,
                &keys.private(),
                "RS256",
                "https://elsewhere.example/token",
            ]),
            "aud",
        ),
    ];
    for (what, assertion, says) in &cases {
        let (status, body) = post_assertion(&server, assertion).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["error"], "invalid_client", "{what}");
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.contains(says),
            "{what}: {description:?} lacks {says:?}"
        );
    }
    // Each refusal counted: the next failures from this address are slowed down.
    let mut limited = false;
    for _ in 0..4 {
        let (status, _) = post_assertion(&server, &other.assertion(&id, &[])).await;
        limited |= status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "assertion failures never tripped the slow-down");
}

#[tokio::test]
async fn a_dpop_proof_binds_the_token_to_its_key_and_bad_proofs_are_refused() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let keys = Keys::new("ES256");
    let proof_key = Keys::new("ES256");
    let (id, _) = server
        .setup_client(&admin, API, "ES256", &["read"], json!({}))
        .await;
    let credential = use_key(&server, &admin, &id, &keys.read("public.pem"), "ES256").await;
    server.add_rule(&admin, "proof", PROOF_RULE).await;

    let answer = authlib_token(&server, &id, &keys, Some(&proof_key));
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"]["token_type"], "DPoP");
    let claims = server
        .verify(answer["body"]["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(
        claims["cnf"]["jkt"], answer["jkt"],
        "cnf.jkt is joserfc's thumbprint"
    );
    // The rule saw how the client proved itself and the key the token is bound to.
    assert_eq!(claims["https://t.example/method"], "private_key_jwt");
    assert_eq!(claims["https://t.example/credential"], credential["id"]);
    assert_eq!(claims["https://t.example/jkt"], answer["jkt"]);

    // Bad proofs, with a client secret this time (a second client).
    let (id2, secret2) = server
        .setup_client(&admin, API, "ES256", &["read"], json!({}))
        .await;
    let endpoint = token_endpoint();
    let proof = |htm: &str, htu: &str, extra: &[&str]| -> String {
        let private = proof_key.private();
        let mut args = vec!["dpop", &private, htm, htu];
        args.extend_from_slice(extra);
        let out: Value = serde_json::from_str(&py(&args)).unwrap();
        out["proof"].as_str().unwrap().to_string()
    };
    let send = |proof: String| {
        let (id2, secret2) = (id2.clone(), secret2.clone());
        let server = &server;
        async move {
            let response = server
                .http
                .post(server.url("/oauth/token"))
                .header("DPoP", proof)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", id2.as_str()),
                    ("client_secret", secret2.as_str()),
                    ("audience", API),
                ])
                .send()
                .await
                .unwrap();
            let (status, body, _) = split(response).await;
            (status, body)
        }
    };
    let fine = proof("POST", &endpoint, &["--jti", "once"]);
    let (status, body) = send(fine.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let claims = server
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims["https://t.example/method"], "client_secret_post");
    assert_eq!(claims["https://t.example/credential"], Value::Null);
    for (what, bad) in [
        ("replayed", fine),
        (
            "wrong htu",
            proof("POST", "https://elsewhere.example/oauth/token", &[]),
        ),
        ("wrong htm", proof("GET", &endpoint, &[])),
        ("stale", proof("POST", &endpoint, &["--iat-in", "-600"])),
        (
            "from the future",
            proof("POST", &endpoint, &["--iat-in", "600"]),
        ),
        ("wrong typ", proof("POST", &endpoint, &["--typ", "JWT"])),
        (
            "a private key in its jwk",
            proof("POST", &endpoint, &["--private-jwk"]),
        ),
        ("not a JWT", "not-a-jwt".to_string()),
    ] {
        let (status, body) = send(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["error"], "invalid_dpop_proof", "{what}: {body}");
    }

    // A DPoP-bound client must send a proof.
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/clients/{id2}"),
            Some(json!({"dpop_bound_access_tokens": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["dpop_bound_access_tokens"], true);
    let (status, body, _) = server.client_token(&id2, &secret2, API).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_dpop_proof");
    let (status, body) = send(proof("POST", &endpoint, &[])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_management_api_takes_tokens_got_with_private_key_jwt_and_discovery_says_so() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (status, client) = server
        .api(
            &admin,
            Method::POST,
            "/clients",
            Some(json!({"name": "keyed admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = client["client_id"].as_str().unwrap();
    let audience = server.management_audience();
    let (status, body) = server
        .api(
            &admin,
            Method::POST,
            "/client-grants",
            Some(json!({"client_id": id, "audience": audience, "scope": ["read:clients"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let keys = Keys::new("ES256");
    use_key(&server, &admin, id, &keys.read("public.pem"), "ES256").await;
    let (status, body) = post_assertion_for(&server, &keys.assertion(id, &[]), &audience).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, clients) = server
        .api(
            body["access_token"].as_str().unwrap(),
            Method::GET,
            "/clients",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{clients}");

    let metadata = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let methods = metadata["token_endpoint_auth_methods_supported"].to_string();
    assert!(methods.contains("private_key_jwt"), "{metadata}");
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        assert!(metadata["token_endpoint_auth_signing_alg_values_supported"]
            .to_string()
            .contains(alg));
    }
    assert!(metadata["dpop_signing_alg_values_supported"]
        .to_string()
        .contains("ES256"));
}

async fn post_assertion_for(
    server: &TestServer,
    assertion: &str,
    audience: &str,
) -> (StatusCode, Value) {
    let (status, body, _) = server
        .token_form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("audience", audience),
        ])
        .await;
    (status, body)
}

/// The replay cache is the cluster's: an assertion used on one node is refused on another.
#[tokio::test]
async fn an_assertion_used_on_one_node_is_refused_on_every_other() {
    let db = Database::fresh();
    let env = [
        ("TOKENHOST_DATABASE_URL", db.url.as_str()),
        (
            "TOKENHOST_MASTER_KEY",
            "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
        ),
    ];
    let a = TestServer::start(&env);
    let b = TestServer::start(&env);
    let admin = a.admin_token().await;
    let keys = Keys::new("ES256");
    let (id, _) = a
        .setup_client(&admin, API, "ES256", &["read"], json!({}))
        .await;
    use_key(&a, &admin, &id, &keys.read("public.pem"), "ES256").await;
    // B learns of the client within a second (a change's notification).
    let mut known = false;
    for _ in 0..50 {
        if post_assertion(&b, &keys.assertion(&id, &[])).await.0 == StatusCode::OK {
            known = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(known, "node B never accepted the client's assertions");
    let assertion = keys.assertion(&id, &[]);
    assert_eq!(post_assertion(&a, &assertion).await.0, StatusCode::OK);
    let (status, body) = post_assertion(&b, &assertion).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("used before"),
        "{body}"
    );
}
