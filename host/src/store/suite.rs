//! One test suite for every `Store` backend: each case in `catalog.rs` and `admin.rs` runs
//! as two tests, on SQLite in memory and on a fresh schema of the PostgreSQL server that
//! `TOKENHOST_TEST_DATABASE_URL` names (`make test` sets it up).

mod admin;
pub(super) mod catalog;

use tokio_postgres::NoTls;

use super::{
    AuditRecord, Client, ClientGrant, PgStore, ResourceServer, Rule, RuleVersion, SealedSecret,
    SqliteStore, Store, StoreResult, StoreTx, StoredSigningKey,
};

/// A store under test, and what a case needs of its database beyond the trait.
pub(super) trait Harness {
    fn store(&self) -> &dyn Store;
    /// Runs SQL that both backends speak (no rows back), outside any transaction.
    fn exec(&self, sql: &str);
    /// The single number a `SELECT count(*) ...` returns.
    fn count(&self, sql: &str) -> i64;
    /// Makes every `event` (`INSERT`, `DELETE`) on `table` fail until `allow`.
    fn refuse(&self, table: &str, event: &str);
    fn allow(&self, table: &str);
    /// `bytes` as an SQL literal.
    fn blob(&self, bytes: &[u8]) -> String;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) struct Sqlite(SqliteStore);

impl Sqlite {
    pub(super) fn new() -> Sqlite {
        Sqlite(SqliteStore::open_in_memory().unwrap())
    }
}

impl Harness for Sqlite {
    fn store(&self) -> &dyn Store {
        &self.0
    }
    fn exec(&self, sql: &str) {
        self.0.conn().execute_batch(sql).unwrap();
    }
    fn count(&self, sql: &str) -> i64 {
        // What the replay cache holds in memory is counted as the file holds it.
        self.0.replay().flush().unwrap();
        self.0.conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }
    fn refuse(&self, table: &str, event: &str) {
        self.exec(&format!(
            "CREATE TEMP TRIGGER refuse_{table} BEFORE {event} ON {table}
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
        ));
    }
    fn allow(&self, table: &str) {
        self.exec(&format!("DROP TRIGGER refuse_{table}"));
    }
    fn blob(&self, bytes: &[u8]) -> String {
        format!("x'{}'", hex(bytes))
    }
}

/// A `PgStore` on a schema of its own, dropped with it.
pub(super) struct Postgres {
    pub(super) store: PgStore,
    /// The URL of the schema, for more stores on it.
    pub(super) url: String,
    base_url: String,
    schema: String,
}

/// The server to test on, or a failure that says how to get one.
pub(super) fn test_database_url() -> String {
    match std::env::var("TOKENHOST_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "the PostgreSQL store tests need a server: run `make test`, or set \
             TOKENHOST_TEST_DATABASE_URL (e.g. to the URL `tests/postgres.sh` prints)"
        ),
    }
}

/// Runs `sql` on `url` on a connection of its own.
pub(super) fn admin_sql(url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap();
    });
}

impl Postgres {
    /// An empty schema (no store yet): `url` connects to it.
    pub(super) fn empty_schema() -> (String, String, String) {
        let base_url = test_database_url();
        let random: [u8; 8] = aws_lc_rs::rand::generate(&aws_lc_rs::rand::SystemRandom::new())
            .unwrap()
            .expose();
        let schema = format!("t_{:016x}", u64::from_le_bytes(random));
        admin_sql(&base_url, &format!("CREATE SCHEMA {schema}"));
        let join = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{join}options=-csearch_path%3D{schema}");
        (base_url, url, schema)
    }

    pub(super) fn new() -> Postgres {
        Self::with_node("node-a")
    }

    pub(super) fn with_node(node: &str) -> Postgres {
        let (base_url, url, schema) = Self::empty_schema();
        let store = PgStore::connect(&url, node).unwrap();
        Postgres {
            store,
            url,
            base_url,
            schema,
        }
    }

    /// Another node's store on the same schema.
    pub(super) fn node(&self, node: &str) -> PgStore {
        PgStore::connect(&self.url, node).unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        admin_sql(
            &self.base_url,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        );
    }
}

impl Harness for Postgres {
    fn store(&self) -> &dyn Store {
        &self.store
    }
    fn exec(&self, sql: &str) {
        self.store
            .with_client(|client| async move { Ok(client.batch_execute(sql).await?) })
            .unwrap();
    }
    fn count(&self, sql: &str) -> i64 {
        self.store.query_one(sql, &[]).unwrap().get(0)
    }
    fn refuse(&self, table: &str, event: &str) {
        self.exec(&format!(
            "CREATE OR REPLACE FUNCTION refused_by_the_test() RETURNS trigger
                 LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
             CREATE TRIGGER refuse_{table} BEFORE {event} ON {table}
                 FOR EACH ROW EXECUTE FUNCTION refused_by_the_test();"
        ));
    }
    fn allow(&self, table: &str) {
        self.exec(&format!("DROP TRIGGER refuse_{table} ON {table}"));
    }
    fn blob(&self, bytes: &[u8]) -> String {
        format!("'\\x{}'::bytea", hex(bytes))
    }
}

/// In tests, each write is a transaction of its own, so that they read like single calls.
impl StoreTx for dyn Store {
    fn put_resource_server(&self, api: &ResourceServer) -> StoreResult<()> {
        self.transaction(|tx| tx.put_resource_server(api))
    }
    fn delete_resource_server(&self, id: &str) -> StoreResult<bool> {
        self.transaction(|tx| tx.delete_resource_server(id))
    }
    fn put_client(&self, client: &Client) -> StoreResult<()> {
        self.transaction(|tx| tx.put_client(client))
    }
    fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        self.transaction(|tx| tx.delete_client(client_id))
    }
    fn put_client_grant(&self, grant: &ClientGrant) -> StoreResult<()> {
        self.transaction(|tx| tx.put_client_grant(grant))
    }
    fn delete_client_grant(&self, id: &str) -> StoreResult<bool> {
        self.transaction(|tx| tx.delete_client_grant(id))
    }
    fn put_rule(&self, rule: &Rule) -> StoreResult<()> {
        self.transaction(|tx| tx.put_rule(rule))
    }
    fn delete_rule(&self, id: &str) -> StoreResult<bool> {
        self.transaction(|tx| tx.delete_rule(id))
    }
    fn change_rule_secrets(
        &self,
        rule_id: &str,
        set: &[SealedSecret],
        remove: &[String],
    ) -> StoreResult<Vec<SealedSecret>> {
        self.transaction(|tx| tx.change_rule_secrets(rule_id, set, remove))
    }
    fn put_rule_version(&self, rule: &Rule, version: &RuleVersion) -> StoreResult<u32> {
        self.transaction(|tx| tx.put_rule_version(rule, version))
    }
    fn put_signing_keys(&self, keys: &[StoredSigningKey]) -> StoreResult<()> {
        self.transaction(|tx| tx.put_signing_keys(keys))
    }
    fn delete_signing_key(&self, kid: &str) -> StoreResult<bool> {
        self.transaction(|tx| tx.delete_signing_key(kid))
    }
    fn record_audit(&self, record: &AuditRecord) -> StoreResult<i64> {
        self.transaction(|tx| tx.record_audit(record))
    }
}

/// Each case as one test per backend: `store::suite::sqlite::<case>` and
/// `store::suite::postgres::<case>`.
macro_rules! on_every_backend {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $case() {
                super::$module::$case(&super::Sqlite::new());
            })*
        }
        mod postgres {
            $(#[test]
            fn $case() {
                super::$module::$case(&super::Postgres::new());
            })*
        }
    };
}

on_every_backend! {
    catalog::resource_servers_round_trip_upsert_and_delete,
    catalog::resource_server_identifier_is_unique,
    catalog::clients_round_trip_with_ordered_secrets,
    catalog::updating_a_client_keeps_its_grants,
    catalog::clients_keep_their_authentication_and_credentials,
    catalog::a_key_is_used_once_until_it_expires,
    catalog::deleting_a_client_removes_its_grants_and_secrets,
    catalog::grants_round_trip_upsert_conflict_and_delete,
    catalog::grant_for_unknown_client_is_refused,
    catalog::rules_round_trip_in_order,
    catalog::signing_keys_round_trip_and_rotate,
    catalog::unknown_enum_values_are_corrupt,
    catalog::deleting_an_api_deletes_its_grants_in_the_same_transaction,
    catalog::a_change_and_its_audit_record_commit_together_or_not_at_all,
    catalog::an_error_of_the_closure_rolls_back_what_it_wrote,
    catalog::signing_keys_are_stored_sealed_only_and_old_plain_rows_read_as_plain,
    catalog::ping_answers,
    catalog::single_reads_find_what_the_lists_hold,
    catalog::text_keys_sort_bytewise,
    catalog::commits_feed_their_changes_and_failures_none,
    admin::entries_come_back_newest_first_and_filtered,
    admin::pruning_keeps_the_newest_within_age,
    admin::entries_list_newest_first_and_filter,
    admin::audit_pages_are_offset_and_counted,
    admin::log_pages_are_offset_and_counted,
    admin::pruning_deletes_only_entries_older_than_the_cutoff,
    admin::versions_are_numbered_per_rule_and_go_with_the_rule,
    admin::secrets_are_set_replaced_and_removed_in_one_change,
}
