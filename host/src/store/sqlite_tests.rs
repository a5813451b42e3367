//! Tests of what only `SqliteStore` does: its file (modes, WAL, reopening, compacting) and
//! the migrations of its older schemas. What every backend does is in `suite.rs`.

use std::path::PathBuf;

use super::*;
use crate::store::suite::catalog::{client, grant, rule};

#[test]
fn migrations_are_valid() {
    migrations().validate().unwrap();
}

#[test]
fn a_key_row_from_before_sealing_reads_as_plain() {
    let s = SqliteStore::open_in_memory().unwrap();
    // As a release before sealing wrote it: the column's default says plain.
    s.conn()
        .execute(
            "INSERT INTO signing_keys (kid, alg, state, private_key, public_jwk, created_at)
             VALUES ('k-old', 'EdDSA', 'current', x'302e', '{}', 1)",
            [],
        )
        .unwrap();
    assert_eq!(
        s.list_signing_keys().unwrap()[0].private_key,
        PrivateKeyAtRest::Plain(vec![0x30, 0x2e])
    );
}

/// A database file removed (with its WAL companions) when the test ends.
struct TempDb(PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn reopening_a_file_keeps_data() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let db = TempDb(std::env::temp_dir().join(format!(
        "tokenhost-store-{}-{nanos}.sqlite3",
        std::process::id()
    )));

    let s = SqliteStore::open(&db.0).unwrap();
    let mode: String = s
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    s.put_client(&client("c", 1)).unwrap();
    s.put_client_grant(&grant("g", "c", "https://a", 1))
        .unwrap();
    s.put_rule(&rule("r", "r", 1, RuleSource::Script("x".into())))
        .unwrap();
    drop(s);

    let s = SqliteStore::open(&db.0).unwrap();
    assert_eq!(s.list_clients().unwrap(), vec![client("c", 1)]);
    assert_eq!(s.list_client_grants().unwrap().len(), 1);
    assert_eq!(s.list_rules().unwrap().len(), 1);
    let fk: bool = s
        .conn()
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert!(fk);
    // Reopening found the schema current and applied nothing twice.
    let version: usize = s
        .conn()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::MIGRATIONS.len());
}

fn temp_db(name: &str) -> TempDb {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    TempDb(std::env::temp_dir().join(format!(
        "tokenhost-store-{name}-{}-{nanos}.sqlite3",
        std::process::id()
    )))
}

fn companion(db: &TempDb, suffix: &str) -> PathBuf {
    let mut p = db.0.clone().into_os_string();
    p.push(suffix);
    PathBuf::from(p)
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn database_files_are_created_owner_only() {
    let db = temp_db("mode");
    let s = SqliteStore::open(&db.0).unwrap();
    s.put_client(&client("c", 1)).unwrap();
    // The WAL and its index exist while the connection is open.
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(&companion(&db, suffix)), 0o600, "{suffix}");
    }
}

#[cfg(unix)]
#[test]
fn an_existing_database_readable_by_others_is_tightened() {
    use std::os::unix::fs::PermissionsExt;

    let db = temp_db("tighten");
    let s = SqliteStore::open(&db.0).unwrap();
    s.put_client(&client("c", 1)).unwrap();
    // As an earlier release (or a copy with the umask's mode) left them.
    for suffix in ["", "-wal", "-shm"] {
        std::fs::set_permissions(
            companion(&db, suffix),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let again = SqliteStore::open(&db.0).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(&companion(&db, suffix)), 0o600, "{suffix}");
    }
    assert_eq!(again.list_clients().unwrap().len(), 1);
    drop(s);
}

#[test]
fn compacting_leaves_no_overwritten_bytes_in_the_files() {
    let db = temp_db("compact");
    let s = SqliteStore::open(&db.0).unwrap();
    let marker = b"overwritten-private-key-bytes-0123456789";
    s.conn()
        .execute(
            "INSERT INTO signing_keys (kid, alg, state, private_key, public_jwk, created_at)
             VALUES ('k', 'EdDSA', 'current', ?1, '{}', 1)",
            [&marker[..]],
        )
        .unwrap();
    let mut sealed = s.list_signing_keys().unwrap().remove(0);
    sealed.private_key = PrivateKeyAtRest::Sealed(vec![7; 64]);
    s.put_signing_keys(&[sealed]).unwrap();
    let found = |db: &TempDb| {
        ["", "-wal"].iter().any(|suffix| {
            std::fs::read(companion(db, suffix))
                .map(|bytes| bytes.windows(marker.len()).any(|w| w == marker))
                .unwrap_or(false)
        })
    };
    assert!(
        found(&db),
        "the overwritten row is expected in the files before"
    );
    s.compact().unwrap();
    assert!(!found(&db), "compact left the overwritten bytes behind");
    assert_eq!(s.list_signing_keys().unwrap().len(), 1);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_used_key_is_still_refused_after_a_restart() {
    use crate::store::ReplayCache;

    let db = temp_db("replay");
    let now = unix_now();
    let s = SqliteStore::open(&db.0).unwrap();
    assert!(s.use_once("used", now + 300, now).unwrap());
    assert!(s.use_once("expired", now - 1, now - 10).unwrap());
    drop(s);

    let s = SqliteStore::open(&db.0).unwrap();
    assert!(
        !s.use_once("used", now + 300, now).unwrap(),
        "a replay after a restart"
    );
    assert!(s.use_once("expired", now + 300, now).unwrap());
    assert!(s.use_once("fresh", now + 300, now).unwrap());
}

#[test]
fn uses_are_written_behind_without_a_stop() {
    use crate::store::ReplayCache;

    let db = temp_db("behind");
    let now = unix_now();
    let s = SqliteStore::open(&db.0).unwrap();
    assert!(s.use_once("k", now + 300, now).unwrap());
    // Read by a connection of its own, as a process started after a crash would.
    let stored = || -> i64 {
        rusqlite::Connection::open(&db.0)
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM replay_cache WHERE key = 'k'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let deadline = std::time::Instant::now() + 20 * super::super::sqlite_replay::FLUSH_EVERY;
    while stored() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the use was not written within 20 flush periods"
        );
        std::thread::sleep(super::super::sqlite_replay::FLUSH_EVERY / 4);
    }
    drop(s);
}

#[test]
fn the_lean_rule_log_keeps_its_rows_and_never_reuses_a_sequence_number() {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    migrations().to_version(&mut conn, 7).unwrap();
    let insert = |conn: &rusqlite::Connection, id: &str| {
        conn.execute(
            "INSERT INTO rule_logs (id, time_ms, request_id, rule_id, rule_name, client_id,
                 audience, outcome, fuel_used, duration_us, console)
             VALUES (?1, 1, 'req', 'rul_1', 'r', 'c', 'https://a', 'issued', 1, 1, '[]')",
            [id],
        )
        .unwrap();
    };
    for id in ["log_a", "log_b", "log_c"] {
        insert(&conn, id);
    }
    // The newest rows pruned too (as the age limit can): only the sequence remembers them.
    conn.execute("DELETE FROM rule_logs WHERE id <> 'log_a'", [])
        .unwrap();

    migrations().to_latest(&mut conn).unwrap();
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_index_list('rule_logs')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 0, "every index of the rule log is gone");
    insert(&conn, "log_d");
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT seq, id FROM rule_logs ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [(1, "log_a".to_string()), (4, "log_d".to_string())]);
}
