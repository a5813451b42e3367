//! `CatalogBuilder::apply` against the SQLite store: each kind of change, deletes and their
//! cascades, changes applied twice or out of order, failures tried again, and readers'
//! snapshots left as they were. After every step the catalog must equal a full build.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::keys::KeySealer;
use crate::rules::{ArtifactKey, Limits, RuleEngine};
use crate::secret_box::SecretBox;
use crate::store::{
    Change, Rule, RuleSource, SealedSecret, SecretHash, SigningAlg, SqliteStore, Store,
};

const MANAGEMENT: &str = "https://t.test/api/v2/";
const RULE_JS: &str = "module.exports = function (c, s, a, ctx, cb) { cb(null, {}); };";

struct Fixture {
    store: Arc<dyn Store>,
    engine: RuleEngine,
    artifact_key: ArtifactKey,
    secret_box: SecretBox,
    key_sealer: KeySealer,
    builder: CatalogBuilder,
}

impl Fixture {
    /// A fixture whose catalog was built once, as at start.
    fn new() -> Fixture {
        let f = Fixture {
            store: Arc::new(SqliteStore::open_in_memory().unwrap()),
            engine: RuleEngine::new(Limits::default()).unwrap(),
            artifact_key: ArtifactKey::from_bytes(&[3; 32]),
            secret_box: SecretBox::new(&[4; 32]).unwrap(),
            key_sealer: KeySealer::new(&[5; 32]).unwrap(),
            builder: CatalogBuilder::new().unwrap(),
        };
        f.apply(&[Change::Everything]);
        f
    }

    fn sources(&self) -> Sources<'_> {
        Sources {
            store: &*self.store,
            engine: &self.engine,
            artifact_key: &self.artifact_key,
            secret_box: &self.secret_box,
            key_sealer: &self.key_sealer,
            management_api: api("management", MANAGEMENT, 60),
        }
    }

    /// Runs one transaction and returns the changes it committed (as a write would).
    fn write(
        &self,
        f: impl FnMut(&dyn crate::store::StoreTx) -> crate::store::StoreResult<()>,
    ) -> Vec<Change> {
        self.store.transaction(f).unwrap();
        self.store.changes().take()
    }

    fn apply(&self, changes: &[Change]) {
        self.builder.apply(&self.sources(), changes, None).unwrap();
    }

    /// The catalog must hold what a full build from the store holds, and no index may keep
    /// anything the maps do not.
    fn assert_converged(&self) {
        let fresh = CatalogBuilder::new().unwrap();
        fresh
            .apply(&self.sources(), &[Change::Everything], None)
            .unwrap();
        let (got, want) = (self.builder.current(), fresh.current());
        assert_eq!(view(&got), view(&want));
        assert_eq!(got.longest_lifetime(), want.longest_lifetime());
        assert_eq!(got.grants.len(), want.grants.len(), "grant index");
        assert_eq!(got.api_ids.len(), want.api_ids.len(), "API index");
        assert_eq!(got.lifetimes, want.lifetimes);
    }
}

type View = (
    Vec<Client>,
    Vec<ResourceServer>,
    Vec<ClientGrant>,
    Vec<String>,
    Vec<String>,
);

fn view(catalog: &Catalog) -> View {
    let mut clients: Vec<Client> = catalog.clients.values().map(|c| (**c).clone()).collect();
    clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let mut apis: Vec<ResourceServer> = catalog.apis.values().map(|a| (**a).clone()).collect();
    apis.sort_by(|a, b| a.id.cmp(&b.id));
    let mut grants: Vec<ClientGrant> = catalog.grants.iter().cloned().collect();
    grants.sort_by(|a, b| a.id.cmp(&b.id));
    let rules = catalog.rules.iter().map(|r| r.id.clone()).collect();
    let kids = catalog.keys.keys().iter().map(|k| k.kid.clone()).collect();
    (clients, apis, grants, rules, kids)
}

fn api(id: &str, identifier: &str, lifetime: u32) -> ResourceServer {
    ResourceServer {
        id: id.into(),
        identifier: identifier.into(),
        name: id.into(),
        scopes: Vec::new(),
        token_lifetime: lifetime,
        signing_alg: SigningAlg::ES256,
        allow_rule_added_scopes: false,
        created_at: 1,
    }
}

fn client(id: &str, hash: u8) -> Client {
    Client {
        client_id: id.into(),
        name: id.into(),
        client_metadata: BTreeMap::new(),
        app_type: "non_interactive".into(),
        secrets: vec![SecretHash {
            hash: vec![hash],
            expires_at: None,
        }],
        created_at: 1,
        token_rate_limit: None,
        authentication: Default::default(),
        credentials: Vec::new(),
    }
}

fn grant(id: &str, client_id: &str, audience: &str, scope: &str) -> ClientGrant {
    ClientGrant {
        id: id.into(),
        client_id: client_id.into(),
        audience: audience.into(),
        scope: vec![scope.into()],
        created_at: 1,
    }
}

fn rule(id: &str, enabled: bool) -> Rule {
    Rule {
        id: id.into(),
        name: id.into(),
        source: RuleSource::Script(RULE_JS.into()),
        enabled,
        order: 1,
        artifact: None,
        created_at: 1,
        updated_at: 1,
    }
}

#[test]
fn clients_are_added_replaced_and_removed_with_their_grants() {
    let f = Fixture::new();
    let changes = f.write(|tx| {
        tx.put_resource_server(&api("a1", "https://a1", 300))?;
        tx.put_client(&client("c1", 1))?;
        tx.put_client(&client("c2", 2))?;
        tx.put_client_grant(&grant("g1", "c1", "https://a1", "read"))?;
        tx.put_client_grant(&grant("g2", "c2", "https://a1", "read"))
    });
    f.apply(&changes);
    let catalog = f.builder.current();
    assert_eq!(catalog.clients["c1"].secrets[0].hash, vec![1]);
    assert_eq!(catalog.grant("c1", "https://a1").unwrap().id, "g1");
    f.assert_converged();

    let changes = f.write(|tx| tx.put_client(&client("c1", 9)));
    assert_eq!(changes, vec![Change::Client("c1".into())]);
    f.apply(&changes);
    assert_eq!(f.builder.current().clients["c1"].secrets[0].hash, vec![9]);
    assert!(f.builder.current().grant("c1", "https://a1").is_some());

    let changes = f.write(|tx| tx.delete_client("c1").map(drop));
    f.apply(&changes);
    let catalog = f.builder.current();
    assert!(!catalog.clients.contains_key("c1"));
    assert!(catalog.grant("c1", "https://a1").is_none(), "the cascade");
    assert!(catalog.grant("c2", "https://a1").is_some());
    f.assert_converged();
    // Twice: nothing more happens.
    f.apply(&changes);
    f.assert_converged();

    // Deleted and made again under the same id before the change is applied: the store
    // deleted its grant, so the catalog must not keep it, though the client is there.
    let mut changes = f.write(|tx| tx.delete_client("c2").map(drop));
    changes.extend(f.write(|tx| tx.put_client(&client("c2", 3))));
    f.apply(&changes);
    let catalog = f.builder.current();
    assert!(catalog.clients.contains_key("c2"));
    assert!(catalog.grant("c2", "https://a1").is_none());
    f.assert_converged();
}

#[test]
fn a_deleted_api_takes_its_grants_and_its_lifetime_with_it() {
    let f = Fixture::new();
    assert_eq!(
        f.builder.current().longest_lifetime(),
        60,
        "the management API's"
    );
    let changes = f.write(|tx| {
        tx.put_resource_server(&api("a1", "https://a1", 300))?;
        tx.put_resource_server(&api("a2", "https://a2", 900))?;
        tx.put_client(&client("c1", 1))?;
        tx.put_client_grant(&grant("g1", "c1", "https://a1", "read"))?;
        tx.put_client_grant(&grant("g2", "c1", "https://a2", "read"))
    });
    f.apply(&changes);
    assert_eq!(f.builder.current().longest_lifetime(), 900);

    let changes = f.write(|tx| tx.put_resource_server(&api("a2", "https://a2", 120)));
    f.apply(&changes);
    let catalog = f.builder.current();
    assert_eq!(catalog.longest_lifetime(), 300);
    assert_eq!(catalog.apis["https://a2"].token_lifetime, 120);

    let changes = f.write(|tx| tx.delete_resource_server("a1").map(drop));
    assert_eq!(changes, vec![Change::ResourceServer("a1".into())]);
    f.apply(&changes);
    let catalog = f.builder.current();
    assert!(!catalog.apis.contains_key("https://a1"));
    assert!(catalog.grant("c1", "https://a1").is_none());
    assert!(catalog.grant("c1", "https://a2").is_some());
    assert_eq!(catalog.longest_lifetime(), 120);
    assert!(catalog.apis.contains_key(MANAGEMENT));
    f.assert_converged();
    f.apply(&changes);
    f.assert_converged();
}

#[test]
fn grants_are_found_by_id_when_changed_or_deleted() {
    let f = Fixture::new();
    let changes = f.write(|tx| {
        tx.put_resource_server(&api("a1", "https://a1", 300))?;
        tx.put_client(&client("c1", 1))?;
        tx.put_client_grant(&grant("g1", "c1", "https://a1", "read"))
    });
    f.apply(&changes);
    let changes = f.write(|tx| tx.put_client_grant(&grant("g1", "c1", "https://a1", "write")));
    assert_eq!(changes, vec![Change::ClientGrant("g1".into())]);
    f.apply(&changes);
    assert_eq!(
        f.builder.current().grant("c1", "https://a1").unwrap().scope,
        vec!["write".to_string()]
    );
    let changes = f.write(|tx| tx.delete_client_grant("g1").map(drop));
    f.apply(&changes);
    assert!(f.builder.current().grant("c1", "https://a1").is_none());
    assert!(f.builder.current().grants.is_empty());
    f.apply(&changes);
    f.assert_converged();
}

#[test]
fn changes_applied_late_or_out_of_order_still_end_as_the_store_is() {
    let f = Fixture::new();
    let mut changes = f.write(|tx| {
        tx.put_resource_server(&api("a1", "https://a", 300))?;
        tx.put_client(&client("c1", 1))?;
        tx.put_client_grant(&grant("g1", "c1", "https://a", "old"))
    });
    f.apply(&changes);
    // The API is deleted and made again under the same identifier, the client too under
    // the same id; each gets a new grant. Applied newest first, as a slow node might.
    changes.extend(f.write(|tx| tx.delete_resource_server("a1").map(drop)));
    changes.extend(f.write(|tx| {
        tx.put_resource_server(&api("a2", "https://a", 600))?;
        tx.put_client_grant(&grant("g2", "c1", "https://a", "new"))
    }));
    changes.extend(f.write(|tx| tx.delete_client("c1").map(drop)));
    changes.extend(f.write(|tx| {
        tx.put_client(&client("c1", 2))?;
        tx.put_client_grant(&grant("g3", "c1", "https://a", "newer"))
    }));
    changes.reverse();
    for change in &changes {
        f.apply(std::slice::from_ref(change));
    }
    let catalog = f.builder.current();
    assert_eq!(catalog.grant("c1", "https://a").unwrap().id, "g3");
    assert_eq!(catalog.apis["https://a"].id, "a2");
    f.assert_converged();
}

#[test]
fn rules_reuse_what_an_upload_compiled_and_forget_deleted_ones() {
    let f = Fixture::new();
    let uploaded = rule("rul_1", true);
    let compiled = Arc::new(compile(&f.engine, &uploaded.source).unwrap());
    let changes = f.write(|tx| tx.put_rule(&uploaded));
    f.builder
        .compiled
        .keep(&uploaded.id, &uploaded.source, compiled.clone());
    f.apply(&changes);
    let catalog = f.builder.current();
    assert_eq!(catalog.rules.len(), 1);
    assert!(
        Arc::ptr_eq(&catalog.rules[0].compiled, &compiled),
        "the upload's compiled rule itself"
    );

    // Disabled: out of the chain, still kept for when it comes back.
    let changes = f.write(|tx| tx.put_rule(&rule("rul_1", false)));
    f.apply(&changes);
    assert!(f.builder.current().rules.is_empty());
    let changes = f.write(|tx| tx.put_rule(&rule("rul_1", true)));
    f.apply(&changes);
    assert!(Arc::ptr_eq(
        &f.builder.current().rules[0].compiled,
        &compiled
    ));

    let changes = f.write(|tx| tx.delete_rule("rul_1").map(drop));
    f.apply(&changes);
    assert!(f.builder.current().rules.is_empty());
    assert_eq!(f.builder.compiled.len(), 0);
    f.assert_converged();
}

#[test]
fn a_change_that_fails_is_tried_again_and_the_others_apply() {
    let f = Fixture::new();
    let changes = f.write(|tx| tx.put_rule(&rule("rul_1", true)));
    f.apply(&changes);
    // A secret sealed under another key cannot be opened.
    let other = SecretBox::new(&[6; 32]).unwrap();
    let sealed = SealedSecret {
        name: "K".into(),
        sealed: other.seal_rule_secret("rul_1", "K", "v").unwrap(),
        updated_at: 1,
    };
    let mut changes = f.write(|tx| {
        tx.change_rule_secrets("rul_1", std::slice::from_ref(&sealed), &[])
            .map(drop)
    });
    changes.extend(f.write(|tx| tx.put_client(&client("c1", 1))));
    assert!(f.builder.apply(&f.sources(), &changes, None).is_err());
    let catalog = f.builder.current();
    assert!(
        catalog.clients.contains_key("c1"),
        "the other change applied"
    );
    assert!(
        catalog.rules[0].secrets.values().is_empty(),
        "the failed one did not"
    );
    // Fixed in the store: the next update, whatever it names, tries the rules again.
    let sealed = SealedSecret {
        name: "K".into(),
        sealed: f.secret_box.seal_rule_secret("rul_1", "K", "v").unwrap(),
        updated_at: 2,
    };
    f.write(|tx| {
        tx.change_rule_secrets("rul_1", std::slice::from_ref(&sealed), &[])
            .map(drop)
    });
    f.apply(&[]);
    assert!(!f.builder.current().rules[0].secrets.values().is_empty());
    f.assert_converged();
}

#[test]
fn signing_keys_and_the_jwks_follow_the_store() {
    let f = Fixture::new();
    assert!(f.builder.current().keys.keys().is_empty());
    let keys = crate::keys::missing(&[], crate::server::state::now()).unwrap();
    let sealed = f.key_sealer.seal_all(&keys).unwrap();
    let changes = f.write(|tx| tx.put_signing_keys(&sealed));
    assert_eq!(changes, vec![Change::SigningKeys]);
    f.apply(&changes);
    let catalog = f.builder.current();
    assert_eq!(catalog.keys.keys().len(), keys.len());
    let jwks = String::from_utf8(catalog.jwks.to_vec()).unwrap();
    for key in &keys {
        assert!(jwks.contains(&key.kid), "{jwks}");
    }
    f.assert_converged();
}

#[test]
fn a_reader_keeps_the_snapshot_it_took() {
    let f = Fixture::new();
    let changes = f.write(|tx| tx.put_client(&client("c1", 1)));
    f.apply(&changes);
    let before = f.builder.current();
    let changes = f.write(|tx| {
        tx.put_client(&client("c2", 2))?;
        tx.delete_client("c1").map(drop)
    });
    f.apply(&changes);
    assert!(before.clients.contains_key("c1") && !before.clients.contains_key("c2"));
    let after = f.builder.current();
    assert!(!after.clients.contains_key("c1") && after.clients.contains_key("c2"));
}

#[test]
fn updates_from_several_threads_at_once_converge() {
    let f = Fixture::new();
    let changes = f.write(|tx| tx.put_resource_server(&api("a1", "https://a1", 300)));
    f.apply(&changes);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let f = &f;
            scope.spawn(move || {
                for i in 0..50 {
                    let id = format!("c{t}_{i}");
                    f.store
                        .transaction(|tx| {
                            tx.put_client(&client(&id, 1))?;
                            tx.put_client_grant(&grant(
                                &format!("g{t}_{i}"),
                                &id,
                                "https://a1",
                                "r",
                            ))
                        })
                        .unwrap();
                    if i % 3 == 0 {
                        f.store
                            .transaction(|tx| tx.delete_client(&id).map(drop))
                            .unwrap();
                    }
                    // As `write()` does: whatever this thread committed is in the catalog
                    // when this returns, whoever applied it.
                    f.builder
                        .apply(&f.sources(), &[], Some(f.store.changes()))
                        .unwrap();
                    assert_eq!(f.builder.current().clients.contains_key(&id), i % 3 != 0);
                }
            });
        }
    });
    f.assert_converged();
    assert_eq!(f.builder.current().clients.len(), 4 * 33);
}
