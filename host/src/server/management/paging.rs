//! The original platform's list conventions, written once for every list of the management
//! API: `page`, `per_page` and `include_totals` page a list; `fields` and `include_fields`
//! pick each item's fields. [`describe`] says so in the OpenAPI document.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    Array, ArrayItems, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{IntoParams, PartialSchema};

use crate::server::api_error::ApiError;

/// Items on a page when `per_page` is not given, as on the original platform.
pub const DEFAULT_PER_PAGE: u32 = 50;
/// The most items a page holds.
pub const MAX_PER_PAGE: u32 = 100;

/// The query parameters every list takes.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The page to answer, counted from 0.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64, default = 0)]
    pub page: Option<u32>,
    /// Items per page: 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100, default = 50)]
    pub per_page: Option<u32>,
    /// true: answer `{start, limit, length, total, <items>}` instead of the bare array.
    #[param(default = false)]
    pub include_totals: Option<bool>,
    /// Comma-separated names of the fields each item keeps (or drops, see
    /// `include_fields`); an unknown name is a 400.
    pub fields: Option<String>,
    /// true: only the `fields` named; false: every field but those.
    #[param(default = true)]
    pub include_fields: Option<bool>,
}

/// One list of the API: the operation that answers it and the key its items take in the
/// `include_totals` envelope.
#[derive(Debug, Clone, Copy)]
pub struct List {
    pub operation_id: &'static str,
    pub key: &'static str,
}

/// Pages `items` (in their order) and keeps the fields `query` asks for, in the answer's
/// shape: the page's items, or the envelope with the totals. `T`'s schema names the
/// fields a query may name.
pub fn answer<T: Serialize + PartialSchema>(
    list: &List,
    query: &ListQuery,
    items: impl IntoIterator<Item = T>,
) -> Result<Json<Value>, ApiError> {
    Paging::new::<T>(query)?.answer(list, items)
}

/// A [`ListQuery`] checked: where its page starts, how long it is, what it keeps.
pub struct Paging {
    /// Items before the page.
    pub start: u64,
    pub per_page: u32,
    totals: bool,
    fields: Fields,
}

impl Paging {
    /// Checks `query` for a list of `T`s.
    pub fn new<T: PartialSchema>(query: &ListQuery) -> Result<Self, ApiError> {
        let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(query_error(format!(
                "per_page must be between 1 and {MAX_PER_PAGE} (default {DEFAULT_PER_PAGE})"
            )));
        }
        Ok(Paging {
            start: u64::from(query.page.unwrap_or(0)) * u64::from(per_page),
            per_page,
            totals: query.include_totals.unwrap_or(false),
            fields: Fields::parse::<T>(query)?,
        })
    }

    /// For the lists that had a `limit` before they had pages (`/audit`, `/logs`): a
    /// `limit` (1 to `max`) is the one page's length, and cannot come with `page` or
    /// `per_page`.
    pub fn or_limit(
        self,
        limit: Option<u32>,
        max: u32,
        query: &ListQuery,
    ) -> Result<Self, ApiError> {
        let Some(limit) = limit else {
            return Ok(self);
        };
        if query.page.is_some() || query.per_page.is_some() {
            return Err(query_error(
                "give limit or page and per_page, not both".to_string(),
            ));
        }
        if limit == 0 || limit > max {
            return Err(query_error(format!("limit must be between 1 and {max}")));
        }
        Ok(Paging {
            start: 0,
            per_page: limit,
            ..self
        })
    }

    /// Does the answer carry the totals (so that a list counted by its store needs them)?
    pub fn totals(&self) -> bool {
        self.totals
    }

    /// The answer for the whole list `items`, of which it takes the page.
    pub fn answer<T: Serialize>(
        &self,
        list: &List,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Json<Value>, ApiError> {
        let end = self.start + u64::from(self.per_page);
        let mut total: u64 = 0;
        let mut page = Vec::new();
        for item in items {
            if (self.start..end).contains(&total) {
                page.push(item);
            }
            total += 1;
        }
        self.answer_page(list, page, total)
    }

    /// The answer for `page`, the page's items already taken out of `total` items.
    pub fn answer_page<T: Serialize>(
        &self,
        list: &List,
        page: Vec<T>,
        total: u64,
    ) -> Result<Json<Value>, ApiError> {
        let page = page
            .into_iter()
            .map(|item| self.fields.keep(item))
            .collect::<Result<Vec<_>, _>>()?;
        if !self.totals {
            return Ok(Json(Value::Array(page)));
        }
        let mut envelope = Map::new();
        envelope.insert("start".into(), self.start.into());
        envelope.insert("limit".into(), self.per_page.into());
        envelope.insert("length".into(), page.len().into());
        envelope.insert("total".into(), total.into());
        envelope.insert(list.key.into(), Value::Array(page));
        Ok(Json(Value::Object(envelope)))
    }
}

fn query_error(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query_string", message)
}

/// Which fields of an item an answer keeps.
enum Fields {
    All,
    Only(BTreeSet<String>),
    AllBut(BTreeSet<String>),
}

impl Fields {
    fn parse<T: PartialSchema>(query: &ListQuery) -> Result<Self, ApiError> {
        // Exactly as the document's pattern says: names, comma-separated; empty is none.
        let named: BTreeSet<String> = query
            .fields
            .iter()
            .filter(|f| !f.is_empty())
            .flat_map(|f| f.split(','))
            .map(String::from)
            .collect();
        if named.is_empty() {
            return Ok(Fields::All);
        }
        let allowed = property_names(&T::schema());
        if let Some(unknown) = named.iter().find(|f| !allowed.contains(*f)) {
            let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
            return Err(query_error(format!(
                "fields names {unknown:?}, which these items do not have; their fields are: {}",
                allowed.join(", ")
            )));
        }
        Ok(if query.include_fields.unwrap_or(true) {
            Fields::Only(named)
        } else {
            Fields::AllBut(named)
        })
    }

    fn keep<T: Serialize>(&self, item: T) -> Result<Value, ApiError> {
        let mut value = serde_json::to_value(item).map_err(|e| {
            tracing::error!(error = %e, "cannot serialize a listed item");
            ApiError::internal()
        })?;
        if let Value::Object(map) = &mut value {
            match self {
                Fields::All => {}
                Fields::Only(names) => map.retain(|k, _| names.contains(k)),
                Fields::AllBut(names) => map.retain(|k, _| !names.contains(k)),
            }
        }
        Ok(value)
    }
}

/// The top-level property names of an object schema.
fn property_names(schema: &RefOr<Schema>) -> BTreeSet<String> {
    match schema {
        RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

/// Describes `lists` in `doc` as they answer: each takes [`ListQuery`] (the handlers
/// declare it), may answer 400, its `fields` are its items' field names, and its 200 is
/// `oneOf` the bare array and the `include_totals` envelope, of items whose properties are
/// all optional (`fields` can drop any), named `Partial<Item>`.
pub fn describe(doc: &mut OpenApi, lists: &[List]) {
    let schemas = doc
        .components
        .as_ref()
        .map(|c| c.schemas.clone())
        .unwrap_or_default();
    let mut partials = Vec::new();
    for (_, operation) in operations(doc) {
        let Some(list) = operation
            .operation_id
            .as_deref()
            .and_then(|id| lists.iter().find(|l| l.operation_id == id))
        else {
            continue;
        };
        let responses = &mut operation.responses.responses;
        responses
            .entry("400".to_string())
            .or_insert_with(bad_query_response);
        let Some(RefOr::T(ok)) = responses.get_mut("200") else {
            continue;
        };
        let Some(content) = ok.content.get_mut("application/json") else {
            continue;
        };
        let Some(item) = content.schema.as_ref().and_then(item_schema_name) else {
            continue;
        };
        let Some(RefOr::T(Schema::Object(object))) = schemas.get(&item) else {
            continue;
        };
        let partial = format!("Partial{item}");
        content.schema = Some(answer_schema(list.key, &partial).into());
        let names: Vec<&str> = object.properties.keys().map(String::as_str).collect();
        fields_pattern(operation, &names);
        let mut object = object.clone();
        object.required.clear();
        partials.push((partial, object));
    }
    let components = doc.components.get_or_insert_with(Default::default);
    for (partial, object) in partials {
        components
            .schemas
            .insert(partial, RefOr::T(Schema::Object(object)));
    }
}

/// `fields` takes the names of the items' fields, comma-separated.
fn fields_pattern(operation: &mut Operation, names: &[&str]) {
    let Some(fields) = operation
        .parameters
        .iter_mut()
        .flatten()
        .find(|p| p.name == "fields")
    else {
        return;
    };
    let one = format!("({})", names.join("|"));
    fields.schema = Some(
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .pattern(Some(format!("^({one}(,{one})*)?$")))
            .into(),
    );
}

fn operations(doc: &mut OpenApi) -> impl Iterator<Item = (&String, &mut Operation)> {
    doc.paths.paths.iter_mut().flat_map(|(path, item)| {
        [item.get.as_mut()]
            .into_iter()
            .flatten()
            .map(move |op| (path, op))
    })
}

/// `Item` of a 200 documented as `[Item]`.
fn item_schema_name(schema: &RefOr<Schema>) -> Option<String> {
    let RefOr::T(Schema::Array(array)) = schema else {
        return None;
    };
    let ArrayItems::RefOrSchema(items) = &array.items else {
        return None;
    };
    let RefOr::Ref(reference) = items.as_ref() else {
        return None;
    };
    reference
        .ref_location
        .strip_prefix("#/components/schemas/")
        .map(String::from)
}

fn answer_schema(key: &str, partial: &str) -> Schema {
    let items = || Array::new(Ref::from_schema_name(partial));
    let count = || {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .minimum(Some(0))
    };
    let envelope = ObjectBuilder::new()
        .description(Some("With include_totals=true"))
        .property("start", count().description(Some("page × per_page")))
        .required("start")
        .property("limit", count().description(Some("per_page")))
        .required("limit")
        .property("length", count().description(Some("Items on this page")))
        .required("length")
        .property(
            "total",
            count().description(Some("Items in the whole list")),
        )
        .required("total")
        .property(key, items())
        .required(key);
    Schema::OneOf(OneOfBuilder::new().item(items()).item(envelope).build())
}

fn bad_query_response() -> RefOr<utoipa::openapi::response::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description("A query parameter out of its bounds, or an unknown field name")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ApiError")))
                    .build(),
            )
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use utoipa::ToSchema;

    use super::*;

    #[derive(Serialize, ToSchema)]
    struct Item {
        id: u32,
        name: String,
    }

    const ITEMS: List = List {
        operation_id: "list_items",
        key: "items",
    };

    fn items(n: u32) -> Vec<Item> {
        (0..n)
            .map(|id| Item {
                id,
                name: format!("item {id}"),
            })
            .collect()
    }

    fn query(q: &str) -> ListQuery {
        let uri: axum::http::Uri = format!("/list?{q}").parse().unwrap();
        axum::extract::Query::<ListQuery>::try_from_uri(&uri)
            .unwrap()
            .0
    }

    fn ids(answer: &Value) -> Vec<u64> {
        answer
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn pages_cover_the_list_once_in_order() {
        let mut seen = Vec::new();
        for page in 0..4 {
            let Json(got) =
                answer(&ITEMS, &query(&format!("page={page}&per_page=3")), items(7)).unwrap();
            seen.extend(ids(&got));
        }
        assert_eq!(seen, [0, 1, 2, 3, 4, 5, 6]);
        let Json(got) = answer(&ITEMS, &query(""), items(60)).unwrap();
        assert_eq!(ids(&got).len(), 50);
    }

    #[test]
    fn totals_come_in_the_envelope() {
        let q = query("page=1&per_page=5&include_totals=true&fields=name");
        let Json(got) = answer(&ITEMS, &q, items(7)).unwrap();
        assert_eq!(
            got,
            json!({"start": 5, "limit": 5, "length": 2, "total": 7,
                   "items": [{"name": "item 5"}, {"name": "item 6"}]})
        );
    }

    #[test]
    fn fields_are_kept_or_dropped_and_unknown_ones_refused() {
        let Json(got) = answer(&ITEMS, &query("fields=id&include_fields=false"), items(1)).unwrap();
        assert_eq!(got, json!([{"name": "item 0"}]));
        let error = answer(&ITEMS, &query("fields=id,colour"), items(1)).unwrap_err();
        assert_eq!(error.error_code, "invalid_query_string");
        assert!(error.message.contains("\"colour\""), "{}", error.message);
        assert!(error.message.contains("id, name"), "{}", error.message);
        // As the document's pattern says: empty is every field; no blanks, no empty names.
        let Json(got) = answer(&ITEMS, &query("fields="), items(1)).unwrap();
        assert_eq!(got, json!([{"id": 0, "name": "item 0"}]));
        for q in ["fields=id,%20name", "fields=id,", "fields=,"] {
            assert!(answer(&ITEMS, &query(q), items(1)).is_err(), "{q}");
        }
    }

    #[test]
    fn per_page_is_bounded() {
        for q in ["per_page=0", "per_page=101"] {
            let error = answer(&ITEMS, &query(q), items(1)).unwrap_err();
            assert_eq!(error.status_code, 400);
            assert!(
                error.message.contains("between 1 and 100"),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn the_document_states_the_bounds_the_code_enforces() {
        let params = serde_json::to_value(ListQuery::into_params(|| None)).unwrap();
        let schema = |name: &str| {
            params
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap()["schema"]
                .clone()
        };
        assert_eq!(schema("per_page")["maximum"], MAX_PER_PAGE);
        assert_eq!(schema("per_page")["default"], DEFAULT_PER_PAGE);
        assert_eq!(schema("per_page")["minimum"], 1);
    }
}
