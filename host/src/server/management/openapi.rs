//! What every operation of the served OpenAPI document has in common, added once after the
//! routers are merged: each one can answer 401 and 403, in the error shape.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{OpenApi, Ref, RefOr};

/// The statuses every management operation can return, and what each means.
const COMMON: &[(&str, &str)] = &[
    (
        "401",
        "No bearer token, or one that is not valid now (its `WWW-Authenticate` says why)",
    ),
    (
        "403",
        "The token's scopes do not include the one this operation needs",
    ),
];

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

fn operations(doc: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ]
        .into_iter()
        .flatten()
    })
}

/// Adds the common error responses to every operation that does not document them itself.
pub(super) fn add_common_responses(doc: &mut OpenApi) {
    for operation in operations(doc) {
        for (status, description) in COMMON {
            operation
                .responses
                .responses
                .entry((*status).to_string())
                .or_insert_with(|| RefOr::T(error_response(description)));
        }
    }
}
