//! The store's behaviour that every backend shares: execution logs, the audit trail, and
//! rules' secrets and versions.

use serde_json::json;

use super::Harness;
use crate::rules::{Level, LogLine};
use crate::store::{
    rfc3339_ms, AuditFilter, AuditRecord, LogEntry, LogFilter, Rule, RuleSource, RuleVersion,
    SealedSecret, Store, StoreTx,
};

// Execution logs.

fn entry(i: i64, rule: &str, outcome: &str) -> LogEntry {
    LogEntry {
        id: format!("log{i}"),
        time: rfc3339_ms(i * 1000),
        time_ms: i * 1000,
        request_id: format!("req{i}"),
        rule_id: rule.into(),
        rule_name: rule.into(),
        client_id: "c".into(),
        audience: "https://a/".into(),
        outcome: outcome.into(),
        code: None,
        cause: None,
        fuel_used: 10,
        duration_us: 20,
        logs: vec![LogLine {
            level: Level::Info,
            message: format!("line {i}"),
        }],
        truncated: i % 2 == 0,
    }
}

pub(super) fn entries_come_back_newest_first_and_filtered(h: &dyn Harness) {
    let store = h.store();
    let entries: Vec<_> = (1..=5)
        .map(|i| entry(i, if i % 2 == 0 { "even" } else { "odd" }, "issued"))
        .collect();
    store.append_logs(&entries).unwrap();
    let all = store
        .list_logs(&LogFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["log5", "log4", "log3", "log2", "log1"]
    );
    assert_eq!(all[0], entries[4]);
    let even = store
        .list_logs(&LogFilter {
            rule_id: Some("even".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(even.len(), 2);
    let recent = store
        .list_logs(&LogFilter {
            since_ms: Some(4000),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(
        store
            .list_logs(&LogFilter {
                limit: 1,
                ..Default::default()
            })
            .unwrap()
            .len(),
        1
    );
}

pub(super) fn log_pages_are_offset_and_counted(h: &dyn Harness) {
    let store = h.store();
    let entries: Vec<_> = (1..=7)
        .map(|i| entry(i, if i % 2 == 0 { "even" } else { "odd" }, "issued"))
        .collect();
    store.append_logs(&entries).unwrap();
    let page = |offset, limit| {
        store
            .list_logs(&LogFilter {
                limit,
                offset,
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(page(0, 3), ["log7", "log6", "log5"]);
    assert_eq!(page(3, 3), ["log4", "log3", "log2"]);
    assert_eq!(page(6, 3), ["log1"]);
    assert!(page(9, 3).is_empty());
    assert_eq!(store.count_logs(&LogFilter::default()).unwrap(), 7);
    let odd_since = LogFilter {
        rule_id: Some("odd".into()),
        since_ms: Some(3000),
        limit: 1,
        offset: 1,
        ..Default::default()
    };
    assert_eq!(store.count_logs(&odd_since).unwrap(), 3);
    let second: Vec<_> = store.list_logs(&odd_since).unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, "log5");
}

pub(super) fn pruning_keeps_the_newest_within_age(h: &dyn Harness) {
    let store = h.store();
    let entries: Vec<_> = (1..=10).map(|i| entry(i, "r", "issued")).collect();
    store.append_logs(&entries).unwrap();
    assert_eq!(store.prune_logs(5, 0).unwrap(), 5);
    assert_eq!(store.prune_logs(100, 8000).unwrap(), 2);
    let left = store
        .list_logs(&LogFilter {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        left.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["log10", "log9", "log8"]
    );
}

// The audit trail.

fn record(at: i64, target_id: &str) -> AuditRecord {
    AuditRecord {
        at,
        actor: "admin".into(),
        action: "update".into(),
        target_type: "rule".into(),
        target_id: target_id.into(),
        before: Some(json!({"enabled": true})),
        after: None,
    }
}

pub(super) fn entries_list_newest_first_and_filter(h: &dyn Harness) {
    let store = h.store();
    let first = store.record_audit(&record(1, "r1")).unwrap();
    let second = store.record_audit(&record(2, "r2")).unwrap();
    store.record_audit(&record(3, "r1")).unwrap();
    assert!(second > first);
    let all = store
        .list_audit(&AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.record.at).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    assert_eq!(all[2].record, record(1, "r1"));
    let r1 = store
        .list_audit(&AuditFilter {
            limit: 1,
            target_type: Some("rule".into()),
            target_id: Some("r1".into()),
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(r1.len(), 1);
    assert_eq!(r1[0].record.at, 3);
    let older = store
        .list_audit(&AuditFilter {
            limit: 10,
            before_id: Some(second),
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].id, first);
}

pub(super) fn audit_pages_are_offset_and_counted(h: &dyn Harness) {
    let store = h.store();
    let ids: Vec<i64> = (1..=5)
        .map(|at| {
            store
                .record_audit(&record(at, if at % 2 == 0 { "r2" } else { "r1" }))
                .unwrap()
        })
        .collect();
    let list = |filter: AuditFilter| {
        store
            .list_audit(&filter)
            .unwrap()
            .into_iter()
            .map(|e| e.record.at)
            .collect::<Vec<_>>()
    };
    let page = |offset| AuditFilter {
        limit: 2,
        offset,
        ..AuditFilter::default()
    };
    assert_eq!(list(page(0)), [5, 4]);
    assert_eq!(list(page(2)), [3, 2]);
    assert_eq!(list(page(4)), [1]);
    assert_eq!(store.count_audit(&page(4)).unwrap(), 5);
    let r1_before = AuditFilter {
        limit: 10,
        offset: 1,
        target_id: Some("r1".into()),
        before_id: Some(ids[4]),
        ..AuditFilter::default()
    };
    assert_eq!(store.count_audit(&r1_before).unwrap(), 2);
    assert_eq!(list(r1_before), [1]);
}

pub(super) fn pruning_deletes_only_entries_older_than_the_cutoff(h: &dyn Harness) {
    let store = h.store();
    for at in [100, 199, 200, 300] {
        store.record_audit(&record(at, "r")).unwrap();
    }
    assert_eq!(store.prune_audit(200).unwrap(), 2);
    let left = store
        .list_audit(&AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(
        left.iter().map(|e| e.record.at).collect::<Vec<_>>(),
        [300, 200]
    );
    assert_eq!(store.prune_audit(200).unwrap(), 0);
}

// Rule secrets and versions.

fn named_rule(id: &str, name: &str) -> Rule {
    Rule {
        id: id.into(),
        name: name.into(),
        source: RuleSource::Script("s".into()),
        enabled: true,
        order: 1,
        artifact: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn store_with_rule<'h>(h: &'h dyn Harness, id: &str) -> &'h dyn Store {
    let store = h.store();
    store
        .put_rule(&named_rule(id, &format!("name-{id}")))
        .unwrap();
    store
}

fn version(script: &str) -> RuleVersion {
    RuleVersion {
        number: 0,
        source: RuleSource::Script(script.into()),
        created_at: 5,
        created_by: Some("admin".into()),
        deployed_from: None,
    }
}

pub(super) fn versions_are_numbered_per_rule_and_go_with_the_rule(h: &dyn Harness) {
    let store = store_with_rule(h, "r1");
    let r1 = named_rule("r1", "name-r1");
    assert_eq!(store.put_rule_version(&r1, &version("a")).unwrap(), 1);
    assert_eq!(store.put_rule_version(&r1, &version("b")).unwrap(), 2);
    let listed = store.list_rule_versions("r1").unwrap();
    assert_eq!(
        listed.iter().map(|v| v.number).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        store.get_rule_version("r1", 1).unwrap().unwrap().source,
        RuleSource::Script("a".into())
    );
    assert_eq!(store.get_rule_version("r1", 3).unwrap(), None);
    // A rule that cannot be stored (its name is taken) gets no version either.
    let clash = named_rule("r2", "name-r1");
    assert!(store.put_rule_version(&clash, &version("x")).is_err());
    assert!(store.list_rule_versions("r2").unwrap().is_empty());
    // The first version of a new rule stores the rule too.
    assert_eq!(
        store
            .put_rule_version(&named_rule("r3", "name-r3"), &version("c"))
            .unwrap(),
        1
    );
    assert!(store.list_rules().unwrap().iter().any(|r| r.id == "r3"));
    let secret = SealedSecret {
        name: "K".into(),
        sealed: vec![0],
        updated_at: 0,
    };
    store.change_rule_secrets("r1", &[secret], &[]).unwrap();
    assert_eq!(store.list_rule_secrets("r1").unwrap().len(), 1);
    assert!(store.delete_rule("r1").unwrap());
    assert!(store.list_rule_versions("r1").unwrap().is_empty());
    assert!(store.list_rule_secrets("r1").unwrap().is_empty());
}

pub(super) fn secrets_are_set_replaced_and_removed_in_one_change(h: &dyn Harness) {
    let store = store_with_rule(h, "r1");
    let secret = |name: &str, v: u8| SealedSecret {
        name: name.into(),
        sealed: vec![v],
        updated_at: 1,
    };
    store
        .change_rule_secrets("r1", &[secret("A", 1), secret("B", 2)], &[])
        .unwrap();
    // The change answers with the secrets it leaves, as a later read finds them.
    let after = store
        .change_rule_secrets("r1", &[secret("A", 3)], &["B".into(), "C".into()])
        .unwrap();
    assert_eq!(after, vec![secret("A", 3)]);
    assert_eq!(store.list_rule_secrets("r1").unwrap(), after);
}
