//! The original platform's list conventions on the management API: `page`, `per_page` and
//! `include_totals` on every list, `fields` and `include_fields` to pick each item's
//! fields, and an API found by its identifier as well as by its id.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::server::TestServer;
use tests::SEED_RULE;

async fn get(server: &TestServer, token: &str, path: &str) -> Value {
    let (status, body) = server.api(token, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

/// A 400 in our error shape whose message names each of `words`.
async fn refused(server: &TestServer, token: &str, path: &str, words: &[&str]) {
    let (status, body) = server.api(token, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "GET {path}: {body}");
    assert_eq!(body["statusCode"], 400, "{body}");
    assert_eq!(body["error"], "Bad Request", "{body}");
    assert_eq!(body["errorCode"], "invalid_query_string", "{body}");
    let message = body["message"].as_str().unwrap();
    for word in words {
        assert!(
            message.contains(word),
            "GET {path}: {message:?} lacks {word:?}"
        );
    }
}

fn keys(item: &Value) -> BTreeSet<&str> {
    item.as_object()
        .unwrap_or_else(|| panic!("not an object: {item}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn pages_cover_a_list_once_and_the_envelope_counts_it() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let before = get(&server, &admin, "/clients?include_totals=true").await;
    let bootstrap = before["total"].as_u64().unwrap();
    assert!(bootstrap >= 1, "{before}");
    for n in 0..7 {
        let (status, body) = server
            .api(
                &admin,
                Method::POST,
                "/clients",
                Some(json!({"name": format!("paged {n}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let total = bootstrap + 7;

    // Without include_totals: the bare array, as before; in pages of 3, each client once.
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    for page in 0.. {
        let items = get(&server, &admin, &format!("/clients?page={page}&per_page=3")).await;
        let items = items.as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        sizes.push(items.len());
        seen.extend(
            items
                .iter()
                .map(|c| c["client_id"].as_str().unwrap().to_string()),
        );
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len() as u64, total, "{seen:?}");
    assert_eq!(
        distinct.len(),
        seen.len(),
        "a client on two pages: {seen:?}"
    );
    let full = (total / 3) as usize;
    assert!(sizes[..full].iter().all(|&n| n == 3), "{sizes:?}");
    assert_eq!(sizes.len(), full + usize::from(total % 3 != 0), "{sizes:?}");

    // The envelope.
    let envelope = get(
        &server,
        &admin,
        "/clients?page=1&per_page=3&include_totals=true",
    )
    .await;
    assert_eq!(
        keys(&envelope),
        BTreeSet::from(["start", "limit", "length", "total", "clients"])
    );
    assert_eq!(envelope["start"], 3);
    assert_eq!(envelope["limit"], 3);
    assert_eq!(envelope["length"], 3);
    assert_eq!(envelope["total"], total);
    let page_ids: Vec<&str> = envelope["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(page_ids, seen[3..6]);
    // A page past the end is empty, its totals still true.
    let past = get(
        &server,
        &admin,
        "/clients?page=50&per_page=3&include_totals=true",
    )
    .await;
    assert_eq!(past["length"], 0, "{past}");
    assert_eq!(past["total"], total, "{past}");
    assert_eq!(past["start"], 150, "{past}");
    // include_totals=false is the bare array.
    let bare = get(&server, &admin, "/clients?include_totals=false").await;
    assert_eq!(bare.as_array().unwrap().len() as u64, total);

    // The other envelopes name their items by resource.
    for (path, key) in [
        ("/resource-servers", "resource_servers"),
        ("/client-grants", "client_grants"),
        ("/rules", "rules"),
        ("/keys/signing", "keys"),
    ] {
        let envelope = get(&server, &admin, &format!("{path}?include_totals=true")).await;
        assert!(envelope[key].is_array(), "{path}: {envelope}");
        assert_eq!(envelope["start"], 0, "{path}: {envelope}");
        assert_eq!(envelope["limit"], 50, "{path}: {envelope}");
    }
}

#[tokio::test]
async fn paging_out_of_its_bounds_is_a_400_in_our_shape() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    for path in [
        "/clients?per_page=0",
        "/clients?per_page=101",
        "/rules?per_page=1000",
    ] {
        refused(&server, &admin, path, &["per_page", "1", "100"]).await;
    }
    for path in [
        "/clients?page=abc",
        "/clients?page=-1",
        "/clients?per_page=many",
        "/client-grants?include_totals=maybe",
        "/keys/signing?include_fields=2",
    ] {
        refused(&server, &admin, path, &[]).await;
    }
    // The largest page is allowed.
    let items = get(&server, &admin, "/clients?per_page=100").await;
    assert!(items.is_array(), "{items}");
}

#[tokio::test]
async fn fields_keep_or_drop_each_items_fields() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (status, body) = server
        .api(
            &admin,
            Method::POST,
            "/clients",
            Some(json!({"name": "fielded", "client_metadata": {"tier": "gold"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let only = get(&server, &admin, "/clients?fields=client_id,name").await;
    for client in only.as_array().unwrap() {
        assert_eq!(
            keys(client),
            BTreeSet::from(["client_id", "name"]),
            "{only}"
        );
    }
    let explicit = get(&server, &admin, "/clients?fields=name&include_fields=true").await;
    assert_eq!(keys(&explicit[0]), BTreeSet::from(["name"]), "{explicit}");

    let all = get(&server, &admin, "/clients").await;
    let dropped = get(
        &server,
        &admin,
        "/clients?fields=client_metadata,app_type&include_fields=false",
    )
    .await;
    for (full, trimmed) in all
        .as_array()
        .unwrap()
        .iter()
        .zip(dropped.as_array().unwrap())
    {
        let mut expected = keys(full);
        expected.remove("client_metadata");
        expected.remove("app_type");
        assert_eq!(keys(trimmed), expected, "{trimmed}");
        assert_eq!(trimmed["client_id"], full["client_id"]);
    }

    refused(
        &server,
        &admin,
        "/clients?fields=name,colour",
        &["\"colour\"", "client_id", "client_metadata"],
    )
    .await;
    refused(
        &server,
        &admin,
        "/resource-servers?fields=audience&include_fields=false",
        &["\"audience\"", "identifier"],
    )
    .await;

    // Combined with paging and the envelope.
    let envelope = get(
        &server,
        &admin,
        "/clients?fields=client_id&include_totals=true&per_page=1&page=1",
    )
    .await;
    assert_eq!(envelope["length"], 1, "{envelope}");
    assert_eq!(
        envelope["total"],
        all.as_array().unwrap().len(),
        "{envelope}"
    );
    assert_eq!(
        envelope["clients"],
        json!([{"client_id": all[1]["client_id"]}])
    );
}

#[tokio::test]
async fn sub_lists_page_too() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;

    // Signing keys: a current and a next key per algorithm at least.
    let keys_page = get(
        &server,
        &admin,
        "/keys/signing?per_page=1&include_totals=true",
    )
    .await;
    assert_eq!(keys_page["length"], 1, "{keys_page}");
    assert!(keys_page["total"].as_u64().unwrap() >= 4, "{keys_page}");
    assert_eq!(keys(&keys_page["keys"][0]).len(), 6, "{keys_page}");
    let kids = get(&server, &admin, "/keys/signing?fields=kid").await;
    assert!(kids
        .as_array()
        .unwrap()
        .iter()
        .all(|k| keys(k) == BTreeSet::from(["kid"])));

    // A rule's versions: three changes to its code.
    let rule = server.add_rule(&admin, "paged", SEED_RULE).await;
    for n in 2..=3 {
        let script = format!("{SEED_RULE}\n// version {n}\n");
        let (status, body) = server
            .api(
                &admin,
                Method::PATCH,
                &format!("/rules/{rule}"),
                Some(json!({"script": script})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let versions = get(
        &server,
        &admin,
        &format!(
            "/rules/{rule}/versions?page=1&per_page=2&include_totals=true&fields=number,current"
        ),
    )
    .await;
    assert_eq!(
        versions,
        json!({"start": 2, "limit": 2, "length": 1, "total": 3,
               "versions": [{"number": 3, "current": true}]})
    );

    // Its secrets: names only, paged.
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}/secrets"),
            Some(json!({"A": "1", "B": "2", "C": "3"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secrets = get(
        &server,
        &admin,
        &format!("/rules/{rule}/secrets?per_page=2&include_totals=true&fields=name"),
    )
    .await;
    assert_eq!(secrets["total"], 3, "{secrets}");
    assert_eq!(secrets["secrets"], json!([{"name": "A"}, {"name": "B"}]));
    refused(
        &server,
        &admin,
        &format!("/rules/{rule}/secrets?fields=value"),
        &["\"value\"", "name", "updated_at"],
    )
    .await;

    // A client's credentials (none yet): an empty page, counted.
    let client = get(&server, &admin, "/clients?fields=client_id").await[0]["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let credentials = get(
        &server,
        &admin,
        &format!("/clients/{client}/credentials?include_totals=true"),
    )
    .await;
    assert_eq!(
        credentials,
        json!({"start": 0, "limit": 50, "length": 0, "total": 0, "credentials": []})
    );
}

#[tokio::test]
async fn an_api_is_found_by_its_identifier_as_by_its_id() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let identifier = "https://paging.example.com/api/";
    let (status, api) = server
        .api(
            &admin,
            Method::POST,
            "/resource-servers",
            Some(json!({"identifier": identifier, "name": "before"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{api}");
    let id = api["id"].as_str().unwrap();
    let by_identifier = "/resource-servers/https%3A%2F%2Fpaging.example.com%2Fapi%2F";

    let found = get(&server, &admin, by_identifier).await;
    assert_eq!(found, api);
    let (status, patched) = server
        .api(
            &admin,
            Method::PATCH,
            by_identifier,
            Some(json!({"name": "after"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["id"], id);
    let by_id = get(&server, &admin, &format!("/resource-servers/{id}")).await;
    assert_eq!(by_id["name"], "after");
    // The trail names the API by its id, whichever way it was reached.
    let trail = get(
        &server,
        &admin,
        &format!("/audit?target_type=resource_server&target_id={id}"),
    )
    .await;
    assert_eq!(trail.as_array().unwrap().len(), 2, "{trail}");

    let (status, body) = server
        .api(&admin, Method::DELETE, by_identifier, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for path in [by_identifier.to_string(), format!("/resource-servers/{id}")] {
        let (status, body) = server.api(&admin, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["errorCode"], "inexistent_resource", "{body}");
    }
}

#[tokio::test]
async fn the_document_describes_lists_as_they_answer() {
    let server = TestServer::start(&[]);
    let doc: Value = server.get_json("/api/v2/openapi.json").await;
    let list = &doc["paths"]["/clients"]["get"];
    let params = list["parameters"].as_array().unwrap();
    let param = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {params:?}"))["schema"]
            .clone()
    };
    assert_eq!(param("per_page")["maximum"], 100);
    assert_eq!(param("per_page")["minimum"], 1);
    assert_eq!(param("per_page")["default"], 50);
    assert_eq!(param("page")["minimum"], 0);
    assert_eq!(param("include_totals")["default"], false);
    assert_eq!(param("include_fields")["default"], true);
    assert!(list["responses"]["400"].is_object(), "{list}");

    let answer = &list["responses"]["200"]["content"]["application/json"]["schema"];
    let one_of = answer["oneOf"].as_array().unwrap();
    assert_eq!(one_of[0]["type"], "array", "{answer}");
    let item = one_of[0]["items"]["$ref"].as_str().unwrap();
    assert_eq!(item, "#/components/schemas/PartialClientView");
    assert_eq!(one_of[1]["properties"]["clients"]["items"]["$ref"], item);
    let partial = &doc["components"]["schemas"]["PartialClientView"];
    assert!(partial["properties"]["client_id"].is_object(), "{partial}");
    assert!(
        partial["required"].as_array().is_none_or(Vec::is_empty),
        "{partial}"
    );

    for path in [
        "/resource-servers",
        "/client-grants",
        "/rules",
        "/keys/signing",
        "/rules/{id}/secrets",
        "/rules/{id}/versions",
        "/clients/{id}/credentials",
    ] {
        let schema =
            &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert!(schema["oneOf"].is_array(), "{path}: {schema}");
    }
    let id = doc["paths"]["/resource-servers/{id}"]["get"]["parameters"][0]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(id.contains("identifier"), "{id:?}");
}

#[tokio::test]
async fn the_audit_trail_and_the_logs_page_as_the_other_lists_and_keep_their_limit() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let api = "https://paging-logs.example.com/";
    let (id, secret) = server
        .setup_client(&admin, api, "ES256", &["test"], json!({}))
        .await;
    server.add_rule(&admin, "logged", SEED_RULE).await;

    // The trail: an API, a client, a grant and a rule, newest first.
    let all = get(&server, &admin, "/audit?limit=1000").await;
    let all = all.as_array().unwrap();
    assert!(all.len() >= 4, "{all:?}");
    let page = get(
        &server,
        &admin,
        "/audit?page=1&per_page=2&include_totals=true",
    )
    .await;
    assert_eq!(page["start"], 2, "{page}");
    assert_eq!(page["limit"], 2, "{page}");
    assert_eq!(page["total"], all.len(), "{page}");
    assert_eq!(page["audit"], json!(all[2..4]));
    let ids = get(&server, &admin, "/audit?fields=id,action&per_page=100").await;
    assert_eq!(keys(&ids[0]), BTreeSet::from(["id", "action"]), "{ids}");
    assert_eq!(ids.as_array().unwrap().len(), all.len());
    // before_id still pages back, and counts with its filter.
    let before = all[1]["id"].as_i64().unwrap();
    let older = get(
        &server,
        &admin,
        &format!("/audit?before_id={before}&include_totals=true&per_page=1"),
    )
    .await;
    assert_eq!(older["total"], all.len() - 2, "{older}");
    assert_eq!(older["audit"][0], all[2]);
    let limited = get(&server, &admin, "/audit?limit=1&include_totals=true").await;
    assert_eq!(limited["limit"], 1, "{limited}");
    assert_eq!(limited["audit"], json!([all[0]]));
    refused(
        &server,
        &admin,
        "/audit?limit=2&per_page=2",
        &["limit", "per_page"],
    )
    .await;
    refused(&server, &admin, "/audit?limit=1001", &["limit", "1000"]).await;
    refused(
        &server,
        &admin,
        "/audit?fields=secret",
        &["\"secret\"", "target_id"],
    )
    .await;

    // Three executions, written off the request path.
    for _ in 0..3 {
        let (status, body, _) = server.client_token(&id, &secret, api).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let started = std::time::Instant::now();
    let logs = loop {
        let logs = get(&server, &admin, "/logs?include_totals=true").await;
        if logs["total"] == 3 || started.elapsed().as_secs() > 5 {
            break logs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(logs["total"], 3, "{logs}");
    let newest_first: Vec<&Value> = logs["logs"].as_array().unwrap().iter().collect();
    let second = get(
        &server,
        &admin,
        "/logs?page=1&per_page=2&include_totals=true&fields=id,outcome",
    )
    .await;
    assert_eq!(second["length"], 1, "{second}");
    assert_eq!(second["total"], 3, "{second}");
    assert_eq!(
        second["logs"],
        json!([{"id": newest_first[2]["id"], "outcome": "issued"}])
    );
    assert_eq!(
        get(&server, &admin, "/logs?limit=2")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let filtered = get(
        &server,
        &admin,
        &format!("/logs?client_id={id}&per_page=1&include_totals=true"),
    )
    .await;
    assert_eq!(filtered["total"], 3, "{filtered}");
    assert_eq!(filtered["length"], 1, "{filtered}");
    refused(&server, &admin, "/logs?per_page=101", &["per_page"]).await;
}
