//! What the operations of the served OpenAPI document have in common, added once after the
//! routers are merged, from what each operation declares:
//! - the security scheme: OAuth 2.0 client credentials at this server's token endpoint,
//!   with every management scope; each operation names the one scope it needs in its
//!   `security` (its handler's `Authorized<S>`), and here that scope goes into its
//!   description too;
//! - the error statuses each operation can answer, in the error shape: 401, 403 and 429
//!   everywhere, 404 where the path names a resource, 400 where it takes a query string or a
//!   body, 413 and 415 where it takes a body;
//! - the rate-limit headers on every response;
//! - links from each creation to the operations on what it created (the new id's place in
//!   their paths), for clients and fuzzers that follow them.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::link::{Link, LinkBuilder};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ClientCredentials, Flow, OAuth2, Scopes, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, OpenApi, Ref, RefOr, Schema, Type};

use super::scopes::MANAGEMENT_SCOPES;

/// The security scheme's name in the document.
pub(super) const SCHEME: &str = "oauth2";

/// Every operation: how a token can be refused, and the rate limit.
const ALWAYS: &[(&str, &str)] = &[
    (
        "401",
        "No bearer token, or one that is not valid now (its `WWW-Authenticate` says why)",
    ),
    (
        "403",
        "The token's scopes do not include the one this operation needs",
    ),
    (
        "429",
        "The caller sent more requests than its rate limit allows: retry after `Retry-After` \
         seconds",
    ),
];
const NOT_FOUND: (&str, &str) = ("404", "No such resource");
const BAD_REQUEST: (&str, &str) = (
    "400",
    "The query string or the body is not what this operation takes (the message says \
     which part and why)",
);
const BODY: &[(&str, &str)] = &[
    ("413", "The body is larger than this operation takes"),
    ("415", "The body is not `application/json`"),
];

/// The headers every management response carries, as on the original platform.
const RATE_LIMIT_HEADERS: &[(&str, &str)] = &[
    (
        "x-ratelimit-limit",
        "How many requests the caller may send at once (its burst)",
    ),
    (
        "x-ratelimit-remaining",
        "How many more requests the caller may send now",
    ),
    (
        "x-ratelimit-reset",
        "When the caller's allowance is full again, in UTC epoch seconds",
    ),
];

/// Completes `doc` (see the module's documentation). `token_url` is this server's token
/// endpoint.
pub(super) fn complete(doc: &mut OpenApi, token_url: &str) {
    add_security_scheme(doc, token_url);
    add_links(doc);
    for (path, operation) in operations(doc) {
        describe_scope(operation);
        add_error_responses(&path, operation);
        for response in operation.responses.responses.values_mut() {
            if let RefOr::T(response) = response {
                add_rate_limit_headers(response);
            }
        }
    }
}

fn add_security_scheme(doc: &mut OpenApi, token_url: &str) {
    let scopes = Scopes::from_iter(MANAGEMENT_SCOPES.iter().map(|scope| (*scope, *scope)));
    let flow = Flow::ClientCredentials(ClientCredentials::new(token_url, scopes));
    let description = "A token from this server's token endpoint (client credentials), for \
                       the management API's audience, with the scopes its client's grant \
                       on that audience holds.";
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            SCHEME,
            SecurityScheme::OAuth2(OAuth2::with_description([flow], description)),
        );
}

/// Every operation with the path it is under.
fn operations(doc: &mut OpenApi) -> impl Iterator<Item = (String, &mut Operation)> {
    doc.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ]
        .into_iter()
        .flatten()
        .map(move |operation| (path.clone(), operation))
    })
}

/// The scopes an operation's `security` names.
fn scopes(operation: &Operation) -> Vec<String> {
    let requirements = serde_json::to_value(&operation.security).unwrap_or_default();
    requirements
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|requirement| requirement.get(SCHEME))
        .filter_map(|scopes| scopes.as_array())
        .flatten()
        .filter_map(|scope| scope.as_str().map(str::to_string))
        .collect()
}

fn describe_scope(operation: &mut Operation) {
    let scopes = scopes(operation);
    if scopes.is_empty() {
        return;
    }
    let needs = format!(
        "Needs the scope {}.",
        scopes
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(" and ")
    );
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{needs}"),
        _ => needs,
    });
}

fn add_error_responses(path: &str, operation: &mut Operation) {
    let takes_query = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let takes_body = operation.request_body.is_some();
    let mut statuses: Vec<(&str, &str)> = ALWAYS.to_vec();
    if path.contains('{') {
        statuses.push(NOT_FOUND);
    }
    if takes_query || takes_body {
        statuses.push(BAD_REQUEST);
    }
    if takes_body {
        statuses.extend_from_slice(BODY);
    }
    for (status, description) in statuses {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(error_response(description)));
    }
    if let Some(RefOr::T(too_many)) = operation.responses.responses.get_mut("429") {
        too_many
            .headers
            .entry("Retry-After".to_string())
            .or_insert_with(|| integer_header("Seconds until the caller may send a request again"));
    }
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ApiError")))
                .build(),
        )
        .build()
}

fn add_rate_limit_headers(response: &mut Response) {
    for (name, description) in RATE_LIMIT_HEADERS {
        response
            .headers
            .entry((*name).to_string())
            .or_insert_with(|| integer_header(description));
    }
}

fn integer_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some(description))
        .build()
}

/// The names of a path's parameters, in order: `/a/{id}/b/{n}` has `id` and `n`.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// The field of a creation's answer that holds the new resource's id: `id`, or
/// `client_id` for a client.
fn id_field(doc: &OpenApi, response: &Response) -> Option<&'static str> {
    let RefOr::Ref(schema) = response.content.get("application/json")?.schema.as_ref()? else {
        return None;
    };
    let name = schema.ref_location.rsplit('/').next()?;
    let components = doc.components.as_ref()?;
    let RefOr::T(Schema::Object(object)) = components.schemas.get(name)? else {
        return None;
    };
    ["id", "client_id"]
        .into_iter()
        .find(|field| object.properties.contains_key(*field))
}

/// The document as JSON, as served, with two things utoipa 5.5 writes put right:
/// - a link's `operationId` and `requestBody` come out in snake case (its `Link` lacks
///   serde's camelCase renaming), so readers see links naming no operation;
/// - a struct with `#[serde(default)]` gives each property whose type is another schema a
///   whole object as its `default`, which client generators cannot represent (and drop the
///   schema); the property's own schema states its defaults already.
pub(super) fn to_json(doc: &OpenApi) -> Result<serde_json::Value, serde_json::Error> {
    let mut json = serde_json::to_value(doc)?;
    fix_links(&mut json);
    drop_object_defaults(&mut json);
    Ok(json)
}

fn drop_object_defaults(json: &mut serde_json::Value) {
    let properties = json["components"]["schemas"]
        .as_object_mut()
        .into_iter()
        .flat_map(|schemas| schemas.values_mut())
        .filter_map(|schema| schema.get_mut("properties"))
        .filter_map(|properties| properties.as_object_mut())
        .flat_map(|properties| properties.values_mut())
        .filter_map(|property| property.as_object_mut());
    for property in properties {
        let names_a_schema = ["$ref", "oneOf", "allOf", "anyOf"]
            .iter()
            .any(|key| property.contains_key(*key));
        if names_a_schema && property.get("default").is_some_and(|d| d.is_object()) {
            property.remove("default");
        }
    }
}

fn fix_links(json: &mut serde_json::Value) {
    let responses = json["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(|responses| responses.as_object_mut())
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else {
            continue;
        };
        for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.to_string(), value);
                }
            }
        }
    }
}

fn add_links(doc: &mut OpenApi) {
    let mut links: Vec<(String, String, Link)> = Vec::new();
    for (collection, item) in &doc.paths.paths {
        let Some(RefOr::T(created)) = item
            .post
            .as_ref()
            .and_then(|post| post.responses.responses.get("201"))
        else {
            continue;
        };
        let Some(field) = id_field(doc, created) else {
            continue;
        };
        let known = path_params(collection);
        let prefix = format!("{collection}/{{");
        for (path, target) in doc
            .paths
            .paths
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
        {
            let params = path_params(path);
            let new: Vec<&str> = params
                .iter()
                .filter(|p| !known.contains(p))
                .copied()
                .collect();
            let [new] = new[..] else { continue };
            let operations = [&target.get, &target.post, &target.patch, &target.delete];
            for operation in operations.into_iter().flatten() {
                let Some(id) = &operation.operation_id else {
                    continue;
                };
                let mut link = LinkBuilder::new()
                    .operation_id(id)
                    .parameter(new, format!("$response.body#/{field}"));
                for param in &known {
                    link = link.parameter(*param, format!("$request.path.{param}"));
                }
                links.push((collection.clone(), id.clone(), link.build()));
            }
        }
    }
    for (collection, name, link) in links {
        let created = doc
            .paths
            .paths
            .get_mut(&collection)
            .and_then(|item| item.post.as_mut())
            .and_then(|post| post.responses.responses.get_mut("201"));
        if let Some(RefOr::T(created)) = created {
            created.links.insert(name, RefOr::T(link));
        }
    }
}
