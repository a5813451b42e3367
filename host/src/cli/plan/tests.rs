use std::collections::BTreeMap;

use super::*;
use crate::cli::server_state::{CurrentApi, CurrentGrant, CurrentRule};
use crate::store::{ScopeDef, SecretMethod, SigningAlg};

fn server() -> ServerState {
    ServerState {
        apis: vec![CurrentApi {
            id: "api_1".into(),
            identifier: "https://api.example.com/".into(),
            name: "Example".into(),
            scopes: vec![ScopeDef {
                value: "test".into(),
                description: String::new(),
            }],
            token_lifetime: 86400,
            signing_alg: SigningAlg::ES256,
            allow_rule_added_scopes: true,
        }],
        clients: vec![CurrentClient {
            client_id: "c1".into(),
            name: "worker".into(),
            client_metadata: BTreeMap::from([("tier".into(), "gold".into())]),
            token_rate_limit: None,
            token_endpoint_auth_method: Some(SecretMethod::ClientSecretPost),
            dpop_bound_access_tokens: false,
        }],
        grants: vec![CurrentGrant {
            id: "cgr_1".into(),
            client_id: "c1".into(),
            audience: "https://api.example.com/".into(),
            scope: vec!["test".into()],
        }],
        rules: vec![CurrentRule {
            id: "rul_1".into(),
            name: "tier".into(),
            script: Some("module.exports = 1".into()),
            enabled: true,
            order: 1,
            secret_names: vec!["KEY".into()],
        }],
    }
}

fn same_file() -> ConfigFile {
    server().to_file().0
}

fn lines(steps: &[Step]) -> Vec<String> {
    steps.iter().map(Step::to_string).collect()
}

#[test]
fn the_servers_own_export_plans_nothing_even_pruned() {
    assert_eq!(plan(&same_file(), &server(), true).unwrap(), Vec::new());
}

#[test]
fn what_differs_is_one_line_per_object_with_its_fields() {
    let mut file = same_file();
    file.resource_servers[0].token_lifetime = Some(60);
    file.clients[0].client_metadata = Some(BTreeMap::from([("plan".into(), "b".into())]));
    file.client_grants[0].scope = vec![];
    file.rules[0].script = "module.exports = 2".into();
    file.rules[0].secrets.insert("NEW".into(), "v".into());
    let steps = plan(&file, &server(), false).unwrap();
    assert_eq!(
        lines(&steps),
        [
            "~ update api \"https://api.example.com/\": token_lifetime",
            "~ update client \"worker\" (c1): client_metadata",
            "~ update grant \"worker\" -> \"https://api.example.com/\": scope",
            "~ update rule \"tier\": script, secrets +NEW",
        ]
    );
    // The metadata merge deletes the key the file dropped.
    let Action::UpdateClient { body, .. } = &steps[1].action else {
        panic!()
    };
    assert_eq!(body["client_metadata"], json!({"tier": null, "plan": "b"}));
    assert_eq!(steps[3].script.as_deref(), Some("module.exports = 2"));
}

#[test]
fn deletions_come_only_with_prune_and_grants_first() {
    let file = ConfigFile::default();
    let steps = plan(&file, &server(), false).unwrap();
    assert!(steps.is_empty(), "{:?}", lines(&steps));
    let steps = plan(&file, &server(), true).unwrap();
    assert_eq!(
        lines(&steps),
        [
            "- delete grant \"worker\" -> \"https://api.example.com/\"",
            "- delete rule \"tier\"",
            "- delete client \"worker\" (c1)",
            "- delete api \"https://api.example.com/\"",
        ]
    );
}

#[test]
fn a_new_client_is_matched_by_name_and_its_grant_follows_it() {
    let mut file = same_file();
    file.clients[0].client_id = None;
    file.clients.push(ClientDef {
        name: "new".into(),
        client_id: None,
        client_secret: None,
        client_metadata: None,
        token_endpoint_auth_method: None,
        dpop_bound_access_tokens: None,
        token_rate_limit: None,
    });
    file.client_grants.push(crate::cli::config_file::GrantDef {
        client: "new".into(),
        audience: "https://api.example.com/".into(),
        scope: vec!["test".into()],
    });
    let steps = plan(&file, &server(), false).unwrap();
    assert_eq!(
        lines(&steps),
        [
            "+ create client \"new\"",
            "+ create grant \"new\" -> \"https://api.example.com/\""
        ]
    );
    let Action::CreateGrant { client, .. } = &steps[1].action else {
        panic!()
    };
    assert_eq!(client, &ClientRef::New(1));
}

#[test]
fn what_cannot_be_applied_is_refused_before_any_step() {
    let mut file = same_file();
    file.client_grants[0].client = "nobody".into();
    let error = plan(&file, &server(), false).unwrap_err();
    assert!(
        error.0.contains("neither the file nor the server"),
        "{error}"
    );

    let mut file = same_file();
    file.rules[0].name = "other".into();
    file.rules[0].secrets = BTreeMap::from([("KEY".into(), "##KEY##".into())]);
    let error = plan(&file, &server(), false).unwrap_err();
    assert!(
        error.0.contains("give KEY in --keyword-mappings"),
        "{error}"
    );

    let mut file = same_file();
    file.rules.push(file.rules[0].clone());
    let error = plan(&file, &server(), false).unwrap_err();
    assert!(error.0.contains("twice"), "{error}");
}

#[test]
fn a_secret_the_rule_has_is_not_sent_again_and_goes_only_with_prune() {
    let mut file = same_file();
    file.rules[0].secrets = BTreeMap::from([("KEY".into(), "##KEY##".into())]);
    assert!(plan(&file, &server(), true).unwrap().is_empty());
    file.rules[0].secrets.clear();
    assert!(plan(&file, &server(), false).unwrap().is_empty());
    let steps = plan(&file, &server(), true).unwrap();
    assert_eq!(lines(&steps), ["~ update rule \"tier\": secrets -KEY"]);
}
