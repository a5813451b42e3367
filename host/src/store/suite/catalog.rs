//! The store's behaviour that every backend shares: APIs, clients, grants, rules, keys
//! and transactions.

use std::collections::BTreeMap;

use serde_json::json;

use super::Harness;
use crate::store::{
    AuditFilter, AuditRecord, Change, Client, ClientGrant, KeyState, PrivateKeyAtRest,
    ResourceServer, Rule, RuleSource, ScopeDef, SecretHash, SigningAlg, StoreError, StoreResult,
    StoreTx, StoredSigningKey,
};

pub(in crate::store) fn api(id: &str, identifier: &str, created_at: i64) -> ResourceServer {
    ResourceServer {
        id: id.into(),
        identifier: identifier.into(),
        name: format!("API {id}"),
        scopes: vec![
            ScopeDef {
                value: "read:x".into(),
                description: "Read X".into(),
            },
            ScopeDef {
                value: "write:x".into(),
                description: String::new(),
            },
        ],
        token_lifetime: 86_400,
        signing_alg: SigningAlg::ES256,
        allow_rule_added_scopes: true,
        created_at,
    }
}

pub(in crate::store) fn client(id: &str, created_at: i64) -> Client {
    Client {
        client_id: id.into(),
        name: format!("client {id}"),
        client_metadata: BTreeMap::from([("team".into(), "billing".into())]),
        app_type: "non_interactive".into(),
        secrets: vec![
            SecretHash {
                hash: vec![1, 2, 3],
                expires_at: None,
            },
            SecretHash {
                hash: vec![4, 5],
                expires_at: Some(1_700_000_000),
            },
        ],
        created_at,
        token_rate_limit: None,
        authentication: Default::default(),
        credentials: Vec::new(),
    }
}

pub(in crate::store) fn grant(
    id: &str,
    client_id: &str,
    audience: &str,
    created_at: i64,
) -> ClientGrant {
    ClientGrant {
        id: id.into(),
        client_id: client_id.into(),
        audience: audience.into(),
        scope: vec!["read:x".into()],
        created_at,
    }
}

pub(in crate::store) fn rule(id: &str, name: &str, order: i64, source: RuleSource) -> Rule {
    Rule {
        id: id.into(),
        name: name.into(),
        source,
        enabled: true,
        order,
        artifact: None,
        created_at: 10,
        updated_at: 10,
    }
}

pub(in crate::store) fn key(kid: &str, state: KeyState, created_at: i64) -> StoredSigningKey {
    StoredSigningKey {
        kid: kid.into(),
        alg: SigningAlg::EdDSA,
        state,
        private_key: PrivateKeyAtRest::Sealed(vec![0x9f, 0x2e, 0x02, 0x01]),
        public_jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": kid}),
        created_at,
        retired_at: None,
    }
}

fn is_conflict(r: StoreResult<()>) -> bool {
    matches!(r, Err(StoreError::Conflict { .. }))
}

fn audit(target_id: &str) -> AuditRecord {
    AuditRecord {
        at: 5,
        actor: "admin".into(),
        action: "create".into(),
        target_type: "client".into(),
        target_id: target_id.into(),
        before: None,
        after: Some(json!({"name": target_id})),
    }
}

pub(super) fn resource_servers_round_trip_upsert_and_delete(h: &dyn Harness) {
    let s = h.store();
    let (a, b) = (api("b", "https://b", 5), api("a", "https://a", 5));
    let first = api("z", "https://z", 1);
    for x in [&a, &b, &first] {
        s.put_resource_server(x).unwrap();
    }
    // created_at first, then id.
    assert_eq!(
        s.list_resource_servers().unwrap(),
        vec![first.clone(), b.clone(), a.clone()]
    );

    let mut changed = a.clone();
    changed.name = "renamed".into();
    changed.signing_alg = SigningAlg::RS256;
    changed.token_lifetime = u32::MAX;
    s.put_resource_server(&changed).unwrap();
    assert_eq!(s.list_resource_servers().unwrap(), vec![first, b, changed]);

    assert!(s.delete_resource_server("a").unwrap());
    assert!(!s.delete_resource_server("a").unwrap());
    assert_eq!(s.list_resource_servers().unwrap().len(), 2);
}

pub(super) fn resource_server_identifier_is_unique(h: &dyn Harness) {
    let s = h.store();
    s.put_resource_server(&api("a", "https://same", 1)).unwrap();
    let err = s
        .put_resource_server(&api("b", "https://same", 2))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { what } if what.contains("https://same")),
        "{err:?}"
    );
    // Changing another API's identifier onto a taken one clashes too.
    s.put_resource_server(&api("c", "https://c", 3)).unwrap();
    assert!(is_conflict(s.put_resource_server(&api(
        "c",
        "https://same",
        3
    ))));
}

pub(super) fn clients_round_trip_with_ordered_secrets(h: &dyn Harness) {
    let s = h.store();
    let mut c = client("c1", 3);
    c.token_rate_limit = Some(crate::store::RateLimit {
        per_second: std::num::NonZeroU32::MIN,
        burst: std::num::NonZeroU32::MAX,
    });
    c.secrets.push(SecretHash {
        hash: vec![9; 32],
        expires_at: Some(-1),
    });
    s.put_client(&c).unwrap();
    s.put_client(&client("c0", 3)).unwrap();
    let listed = s.list_clients().unwrap();
    assert_eq!(listed, vec![client("c0", 3), c.clone()]);

    // Rotation: the new secret goes first, the old one gets an expiry.
    c.secrets = vec![
        SecretHash {
            hash: vec![7, 7],
            expires_at: None,
        },
        SecretHash {
            hash: vec![1, 2, 3],
            expires_at: Some(42),
        },
    ];
    c.name = "renamed".into();
    s.put_client(&c).unwrap();
    assert_eq!(s.list_clients().unwrap()[1], c);

    c.secrets.clear();
    s.put_client(&c).unwrap();
    assert_eq!(s.list_clients().unwrap()[1].secrets, vec![]);
}

pub(super) fn clients_keep_their_authentication_and_credentials(h: &dyn Harness) {
    use crate::store::{AssertionAlg, ClientAuthentication, ClientCredential, SecretMethod};
    let s = h.store();
    let mut c = client("pk", 1);
    assert_eq!(c.authentication, ClientAuthentication::default());
    c.credentials = vec![ClientCredential {
        id: "cred_1".into(),
        name: "laptop".into(),
        alg: AssertionAlg::ES256,
        kid: "thumb".into(),
        pem: "-----BEGIN PUBLIC KEY-----\n...".into(),
        jwk: serde_json::json!({"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}),
        created_at: 5,
        expires_at: Some(99),
    }];
    c.authentication = ClientAuthentication {
        token_endpoint_auth_method: None,
        private_key_jwt: vec!["cred_1".into()],
        dpop_bound_access_tokens: true,
    };
    s.put_client(&c).unwrap();
    assert_eq!(s.get_client("pk").unwrap().unwrap(), c);
    c.authentication.token_endpoint_auth_method = Some(SecretMethod::ClientSecretBasic);
    c.credentials.clear();
    s.put_client(&c).unwrap();
    assert_eq!(s.list_clients().unwrap(), vec![c]);
    // A row from before these columns reads as the default: a client secret.
    h.exec("UPDATE clients SET authentication = NULL");
    assert_eq!(
        s.get_client("pk").unwrap().unwrap().authentication,
        ClientAuthentication::default()
    );
}

pub(super) fn a_key_is_used_once_until_it_expires(h: &dyn Harness) {
    let s = h.store();
    assert!(s.use_once("k", 100, 10).unwrap(), "first use");
    assert!(!s.use_once("k", 100, 10).unwrap(), "a replay");
    assert!(
        !s.use_once("k", 200, 100).unwrap(),
        "still in use at its expiry"
    );
    assert!(s.use_once("other", 100, 10).unwrap(), "another key");
    // Past its time the entry no longer counts, and the new use holds until its own time.
    assert!(s.use_once("k", 300, 101).unwrap(), "expired: used afresh");
    assert!(!s.use_once("k", 300, 200).unwrap());
    // Enough uses prune the expired entries.
    for i in 0..crate::store::replay::PRUNE_EVERY {
        s.use_once(&format!("n{i}"), 1_000, 500).unwrap();
    }
    assert_eq!(
        h.count("SELECT COUNT(*) FROM replay_cache WHERE expires_at < 500"),
        0
    );
}

pub(super) fn updating_a_client_keeps_its_grants(h: &dyn Harness) {
    let s = h.store();
    s.put_client(&client("c", 1)).unwrap();
    s.put_client_grant(&grant("g", "c", "https://a", 1))
        .unwrap();
    s.put_client(&client("c", 1)).unwrap();
    assert_eq!(s.list_client_grants().unwrap().len(), 1);
}

pub(super) fn deleting_a_client_removes_its_grants_and_secrets(h: &dyn Harness) {
    let s = h.store();
    s.put_client(&client("c", 1)).unwrap();
    s.put_client(&client("other", 2)).unwrap();
    s.put_client_grant(&grant("g1", "c", "https://a", 1))
        .unwrap();
    s.put_client_grant(&grant("g2", "other", "https://a", 1))
        .unwrap();

    assert!(s.delete_client("c").unwrap());
    assert!(!s.delete_client("c").unwrap());
    assert_eq!(
        s.list_client_grants().unwrap(),
        vec![grant("g2", "other", "https://a", 1)]
    );
    assert_eq!(
        h.count("SELECT count(*) FROM client_secrets WHERE client_id = 'c'"),
        0
    );
    assert_eq!(s.list_clients().unwrap(), vec![client("other", 2)]);
}

pub(super) fn grants_round_trip_upsert_conflict_and_delete(h: &dyn Harness) {
    let s = h.store();
    s.put_client(&client("c", 1)).unwrap();
    s.put_client_grant(&grant("g2", "c", "https://b", 1))
        .unwrap();
    s.put_client_grant(&grant("g1", "c", "https://a", 1))
        .unwrap();
    let mut g = grant("g0", "c", "https://z", 0);
    s.put_client_grant(&g).unwrap();
    let ids: Vec<_> = s
        .list_client_grants()
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(ids, ["g0", "g1", "g2"]);

    g.scope = vec!["a".into(), "b".into()];
    s.put_client_grant(&g).unwrap();
    assert_eq!(s.list_client_grants().unwrap()[0], g);

    assert!(is_conflict(s.put_client_grant(&grant(
        "g3",
        "c",
        "https://a",
        2
    ))));
    assert!(s.delete_client_grant("g1").unwrap());
    assert!(!s.delete_client_grant("g1").unwrap());
    // The audience is free again.
    s.put_client_grant(&grant("g3", "c", "https://a", 2))
        .unwrap();
}

pub(super) fn grant_for_unknown_client_is_refused(h: &dyn Harness) {
    let s = h.store();
    assert!(matches!(
        s.put_client_grant(&grant("g", "ghost", "https://a", 1)),
        Err(StoreError::Backend(_))
    ));
}

pub(super) fn rules_round_trip_in_order(h: &dyn Harness) {
    let s = h.store();
    let mut late = rule(
        "r1",
        "late",
        20,
        RuleSource::Script("function f() {}".into()),
    );
    late.enabled = false;
    let early = rule(
        "r2",
        "early",
        -5,
        RuleSource::Component(vec![0, 0x61, 0x73, 0x6d]),
    );
    let mut mid = rule("r3", "mid", 7, RuleSource::Script(String::new()));
    mid.artifact = Some(vec![1, 2, 3]);
    for r in [&late, &early, &mid] {
        s.put_rule(r).unwrap();
    }
    assert_eq!(
        s.list_rules().unwrap(),
        vec![early.clone(), mid.clone(), late.clone()]
    );

    // Reordering and switching the source kind update in place.
    late.order = -10;
    late.source = RuleSource::Component(vec![9]);
    late.updated_at = 99;
    s.put_rule(&late).unwrap();
    assert_eq!(s.list_rules().unwrap(), vec![late, early, mid]);

    assert!(is_conflict(s.put_rule(&rule(
        "r4",
        "mid",
        1,
        RuleSource::Script("x".into())
    ))));
    assert!(s.delete_rule("r3").unwrap());
    assert!(!s.delete_rule("r3").unwrap());
}

pub(super) fn signing_keys_round_trip_and_rotate(h: &dyn Harness) {
    let s = h.store();
    let (a, mut b) = (
        key("k-a", KeyState::Current, 1),
        key("k-b", KeyState::Next, 2),
    );
    s.put_signing_keys(&[b.clone(), a.clone()]).unwrap();
    assert_eq!(s.list_signing_keys().unwrap(), vec![a.clone(), b.clone()]);

    let mut a_retired = a.clone();
    a_retired.state = KeyState::Retired;
    a_retired.retired_at = Some(100);
    b.state = KeyState::Current;
    s.put_signing_keys(&[a_retired.clone(), b.clone()]).unwrap();
    assert_eq!(s.list_signing_keys().unwrap(), vec![a_retired, b]);

    assert!(s.delete_signing_key("k-a").unwrap());
    assert!(!s.delete_signing_key("k-a").unwrap());
    assert_eq!(s.list_signing_keys().unwrap().len(), 1);
}

pub(super) fn unknown_enum_values_are_corrupt(h: &dyn Harness) {
    let s = h.store();
    s.put_signing_keys(&[key("k", KeyState::Next, 1)]).unwrap();
    h.exec("UPDATE signing_keys SET state = 'lost'");
    assert!(matches!(s.list_signing_keys(), Err(StoreError::Corrupt(_))));

    s.put_resource_server(&api("a", "https://a", 1)).unwrap();
    h.exec("UPDATE resource_servers SET signing_alg = 'HS256'");
    assert!(matches!(
        s.list_resource_servers(),
        Err(StoreError::Corrupt(_))
    ));
}

pub(super) fn deleting_an_api_deletes_its_grants_in_the_same_transaction(h: &dyn Harness) {
    let s = h.store();
    s.put_resource_server(&api("a", "https://a", 1)).unwrap();
    s.put_resource_server(&api("b", "https://b", 1)).unwrap();
    s.put_client(&client("c", 1)).unwrap();
    s.put_client_grant(&grant("ga", "c", "https://a", 1))
        .unwrap();
    s.put_client_grant(&grant("gb", "c", "https://b", 1))
        .unwrap();

    // A failure after the grants went (here: the API row refuses to go) undoes it all.
    h.refuse("resource_servers", "DELETE");
    assert!(s.delete_resource_server("a").is_err());
    assert_eq!(s.list_resource_servers().unwrap().len(), 2);
    assert_eq!(s.list_client_grants().unwrap().len(), 2);

    h.allow("resource_servers");
    assert!(s.delete_resource_server("a").unwrap());
    assert_eq!(
        s.list_client_grants().unwrap(),
        vec![grant("gb", "c", "https://b", 1)]
    );
    assert!(!s.delete_resource_server("a").unwrap());
}

pub(super) fn a_change_and_its_audit_record_commit_together_or_not_at_all(h: &dyn Harness) {
    let s = h.store();
    let id = s
        .transaction(|tx| {
            tx.put_client(&client("c1", 1))?;
            tx.record_audit(&audit("c1"))
        })
        .unwrap();
    assert!(id > 0);

    h.refuse("audit_log", "INSERT");
    let failed = s.transaction(|tx| {
        tx.put_client(&client("c2", 2))?;
        tx.delete_client("c1")?;
        tx.record_audit(&audit("c2"))
    });
    assert!(matches!(failed, Err(StoreError::Backend(_))), "{failed:?}");
    // Neither write of the failed change was applied.
    assert_eq!(s.list_clients().unwrap(), vec![client("c1", 1)]);
    let trail = s
        .list_audit(&AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(trail.len(), 1);
}

pub(super) fn an_error_of_the_closure_rolls_back_what_it_wrote(h: &dyn Harness) {
    let s = h.store();
    let failed: StoreResult<()> = s.transaction(|tx| {
        tx.put_client(&client("c", 1))?;
        Err(StoreError::Corrupt("changed its mind".into()))
    });
    assert!(failed.is_err());
    assert!(s.list_clients().unwrap().is_empty());
}

pub(super) fn signing_keys_are_stored_sealed_only_and_old_plain_rows_read_as_plain(
    h: &dyn Harness,
) {
    let s = h.store();
    let mut plain = key("k-plain", KeyState::Current, 1);
    plain.private_key = PrivateKeyAtRest::Plain(vec![0x30, 0x2e]);
    let refused = s.put_signing_keys(&[key("k-ok", KeyState::Next, 1), plain]);
    assert!(
        matches!(&refused, Err(StoreError::Backend(e)) if e.contains("in the clear")),
        "{refused:?}"
    );
    // The whole write was refused, the sealed key with it.
    assert!(s.list_signing_keys().unwrap().is_empty());

    // A row as a release before sealing wrote it.
    h.exec(&format!(
        "INSERT INTO signing_keys (kid, alg, state, private_key, private_format, public_jwk,
             created_at)
         VALUES ('k-old', 'EdDSA', 'current', {}, 'plain', '{{}}', 1)",
        h.blob(&[0x30, 0x2e])
    ));
    let listed = s.list_signing_keys().unwrap();
    assert_eq!(
        listed[0].private_key,
        PrivateKeyAtRest::Plain(vec![0x30, 0x2e])
    );
    let mut sealed = listed[0].clone();
    sealed.private_key = PrivateKeyAtRest::Sealed(vec![1, 2, 3]);
    s.put_signing_keys(&[sealed.clone()]).unwrap();
    assert_eq!(s.list_signing_keys().unwrap(), vec![sealed]);
}

pub(super) fn ping_answers(h: &dyn Harness) {
    h.store().ping().unwrap();
}

pub(super) fn single_reads_find_what_the_lists_hold(h: &dyn Harness) {
    let s = h.store();
    s.put_resource_server(&api("a", "https://a", 1)).unwrap();
    s.put_client(&client("c", 1)).unwrap();
    s.put_client(&client("bare", 2)).unwrap();
    let mut bare = client("bare", 2);
    bare.secrets.clear();
    s.put_client(&bare).unwrap();
    s.put_client_grant(&grant("g", "c", "https://a", 1))
        .unwrap();
    assert_eq!(
        s.get_resource_server("a").unwrap(),
        Some(api("a", "https://a", 1))
    );
    assert_eq!(s.get_client("c").unwrap(), Some(client("c", 1)));
    // A client without secrets is found all the same.
    assert_eq!(s.get_client("bare").unwrap(), Some(bare));
    assert_eq!(
        s.get_client_grant("g").unwrap(),
        Some(grant("g", "c", "https://a", 1))
    );
    assert_eq!(s.get_resource_server("https://a").unwrap(), None);
    assert_eq!(s.get_client("ghost").unwrap(), None);
    assert_eq!(s.get_client_grant("ghost").unwrap(), None);
}

pub(super) fn text_keys_sort_bytewise(h: &dyn Harness) {
    let s = h.store();
    for id in ["a", "_", "B", "é", "A"] {
        s.put_client(&client(id, 1)).unwrap();
    }
    let ids: Vec<_> = s
        .list_clients()
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["A", "B", "_", "a", "é"]);
}

pub(super) fn commits_feed_their_changes_and_failures_none(h: &dyn Harness) {
    let s = h.store();
    s.changes().take();
    s.transaction(|tx| {
        tx.put_client(&client("c", 1))?;
        tx.put_client_grant(&grant("g", "c", "https://a", 1))?;
        tx.put_client(&client("c", 1))?;
        tx.put_rule(&rule("r", "r", 1, RuleSource::Script("x".into())))?;
        tx.put_signing_keys(&[])?;
        tx.record_audit(&audit("c"))
    })
    .unwrap();
    assert_eq!(
        s.changes().take(),
        [
            Change::Client("c".into()),
            Change::ClientGrant("g".into()),
            Change::Rules
        ]
    );
    assert!(s.changes().take().is_empty());
    let failed: StoreResult<()> = s.transaction(|tx| {
        tx.delete_client("c")?;
        Err(StoreError::Corrupt("changed its mind".into()))
    });
    assert!(failed.is_err());
    assert!(s.changes().take().is_empty());
    assert_eq!(s.list_clients().unwrap().len(), 1);
}
