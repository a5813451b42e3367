//! The configuration file of `tokenhost export` and `tokenhost apply`: a server's APIs,
//! clients, grants and rules as YAML or JSON, with the Deploy CLI's keyword replacement
//! (`##KEY##` by the value, `@@KEY@@` by its JSON) done on the text before it is read.
//!
//! A field left out of a file is not managed: a new object gets the server's default, an
//! existing one keeps what it has. `export` writes every field, in a stable order.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::CliError;
use super::EXIT_USAGE;
use crate::store::{RateLimit, ScopeDef, SecretMethod, SigningAlg};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub resource_servers: Vec<ApiDef>,
    #[serde(default)]
    pub clients: Vec<ClientDef>,
    #[serde(default)]
    pub client_grants: Vec<GrantDef>,
    #[serde(default)]
    pub rules: Vec<RuleDef>,
}

/// An API, known by its `identifier`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiDef {
    pub identifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<ScopeDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_alg: Option<SigningAlg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_rule_added_scopes: Option<bool>,
}

/// A client, known by its `client_id` when the file gives one, else by its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Used only to create the client (a stored secret cannot be read back to compare);
    /// without it a new client gets a generated one, printed once. Never exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<BTreeMap<String, String>>,
    /// `null`: the client's secrets are refused.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub token_endpoint_auth_method: Option<Option<SecretMethod>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens: Option<bool>,
    /// `null`: the server's default limit.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub token_rate_limit: Option<Option<RateLimit>>,
}

/// A grant, known by its client (a `client_id` or a name of the file's clients, or of the
/// server's) and its audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantDef {
    pub client: String,
    pub audience: String,
    #[serde(default)]
    pub scope: Vec<String>,
}

/// A rule, known by its name. Secrets are `NAME: value`; `export` writes `##NAME##` for
/// each value, for `--keyword-mappings` to fill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub name: String,
    pub script: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

/// Tells a field set to `null` (`Some(None)`) from a field left out (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// JSON for a `.json` file, else YAML.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// The values `##KEY##` and `@@KEY@@` stand for: a JSON object, as the Deploy CLI's
/// `AUTH0_KEYWORD_REPLACE_MAPPINGS`.
#[derive(Debug, Default)]
pub struct Mappings(serde_json::Map<String, Value>);

impl Mappings {
    pub fn read(path: Option<&Path>) -> Result<Mappings, CliError> {
        let Some(path) = path else {
            return Ok(Mappings::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| CliError::unreadable(path, &e))?;
        match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(Mappings(map)),
            Ok(_) => Err(bad_file(
                path,
                "the keyword mappings must be one JSON object",
            )),
            // serde_json's message names a line and column, never the text there.
            Err(e) => Err(bad_file(path, &format!("not JSON: {e}"))),
        }
    }

    /// `text` with every `##KEY##` replaced by the value (a string as it is, anything else
    /// as JSON) and every `@@KEY@@` by the value's JSON; keys not in the mappings stay.
    pub fn replace(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (key, value) in &self.0 {
            let raw = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out = out.replace(&format!("##{key}##"), &raw);
            out = out.replace(&format!("@@{key}@@"), &value.to_string());
        }
        out
    }
}

/// A `##KEY##` placeholder left in `value` (no mapping gave it a value), if any.
pub fn placeholder(value: &str) -> Option<&str> {
    let start = value.find("##")?;
    let rest = &value[start + 2..];
    let end = rest.find("##")?;
    let key = &rest[..end];
    let is_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    is_key.then_some(key)
}

/// Reads `path` as the configuration, its keywords replaced first.
pub fn read(path: &Path, mappings: &Mappings) -> Result<ConfigFile, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::unreadable(path, &e))?;
    parse(path, &mappings.replace(&text))
}

/// Parses a configuration already read (and its keywords replaced). A parse error names
/// the place, never the text found there: the file may hold secrets.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, CliError> {
    let parsed = match Format::of(path) {
        Format::Json => serde_json::from_str(text).map_err(|e| e.to_string()),
        Format::Yaml => serde_norway::from_str(text).map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| match unreplaced(text) {
        Some(key) => bad_file(
            path,
            &format!("{e} (@@{key}@@ has no value: give {key} in --keyword-mappings)"),
        ),
        None => bad_file(path, &e),
    })
}

/// The first `@@KEY@@` no mapping replaced: in a file that does not parse, the likely
/// reason (it stands for JSON, and is no YAML or JSON itself).
fn unreplaced(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find("@@") {
        let after = &rest[start + 2..];
        let end = after.find("@@")?;
        let key = &after[..end];
        if !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Some(key);
        }
        rest = after;
    }
    None
}

/// The text of `config` in `format`, ending with a newline.
pub fn write(config: &ConfigFile, format: Format) -> Result<String, CliError> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(config).map_err(|e| e.to_string()),
        Format::Yaml => serde_norway::to_string(config).map_err(|e| e.to_string()),
    };
    let mut text = text.map_err(|e| {
        CliError::failed("internal", format!("cannot write the configuration: {e}"))
    })?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

pub fn bad_file(path: &Path, why: &str) -> CliError {
    CliError::new(
        EXIT_USAGE,
        "invalid_config",
        format!("{}: {why}", path.display()),
    )
    .with("file", path.display().to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keywords_are_replaced_as_the_deploy_cli_does() {
        let Value::Object(map) = json!({"DOMAIN": "example.com", "SCOPES": ["a", "b"]}) else {
            unreachable!()
        };
        let mappings = Mappings(map);
        assert_eq!(
            mappings.replace("id: https://##DOMAIN##/\nlist: @@SCOPES@@\nkeep: ##OTHER##"),
            "id: https://example.com/\nlist: [\"a\",\"b\"]\nkeep: ##OTHER##"
        );
    }

    #[test]
    fn a_placeholder_left_is_found_by_its_key() {
        assert_eq!(placeholder("##BILLING_KEY##"), Some("BILLING_KEY"));
        assert_eq!(placeholder("sk_live_abc"), None);
        assert_eq!(placeholder("## not a key ##"), None);
    }

    #[test]
    fn yaml_and_json_read_the_same_and_unknown_fields_are_refused() {
        let yaml = "clients:\n  - name: a\n    token_endpoint_auth_method: null\n";
        let json = r#"{"clients": [{"name": "a", "token_endpoint_auth_method": null}]}"#;
        let from_yaml = parse(Path::new("c.yaml"), yaml).unwrap();
        assert_eq!(from_yaml, parse(Path::new("c.json"), json).unwrap());
        assert_eq!(from_yaml.clients[0].token_endpoint_auth_method, Some(None));
        let error = parse(Path::new("c.yaml"), "rules:\n  - name: r\n    scirpt: x\n").unwrap_err();
        assert_eq!(error.code, "invalid_config");
        assert!(error.message.contains("scirpt"), "{}", error.message);
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let config = ConfigFile {
            clients: vec![ClientDef {
                name: "worker".into(),
                client_id: Some("abc".into()),
                client_secret: None,
                client_metadata: Some(BTreeMap::from([("tier".into(), "gold".into())])),
                token_endpoint_auth_method: Some(None),
                dpop_bound_access_tokens: Some(false),
                token_rate_limit: None,
            }],
            ..ConfigFile::default()
        };
        for (format, name) in [(Format::Yaml, "c.yaml"), (Format::Json, "c.json")] {
            let text = write(&config, format).unwrap();
            assert_eq!(parse(Path::new(name), &text).unwrap(), config, "{text}");
        }
    }
}
