//! The JWS compact serialization (RFC 7515 §7.1) of what a client sends, decoded within
//! bounds: the length is checked before anything is base64-decoded, and a header with
//! `crit` is refused, since we understand no extension (RFC 7515 §4.1.11).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// A decoded, not yet verified, compact JWS.
pub(super) struct Jws<'a> {
    pub(super) header: Map<String, Value>,
    pub(super) claims: Map<String, Value>,
    /// `header.payload` as sent: what the signature covers.
    pub(super) signing_input: &'a str,
    pub(super) signature: Vec<u8>,
}

/// Decodes `token` of at most `max_bytes`; `what` names it in errors ("client assertion").
pub(super) fn decode<'a>(token: &'a str, max_bytes: usize, what: &str) -> Result<Jws<'a>, String> {
    let (header, payload, signature) = split(token, max_bytes, what)?;
    let signing_input = &token[..header.len() + 1 + payload.len()];
    let header = json_object(header, what, "header")?;
    if header.contains_key("crit") {
        return Err(format!(
            "{what} header has crit, and no extension is supported"
        ));
    }
    let claims = json_object(payload, what, "payload")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| format!("{what} signature is not base64url without padding"))?;
    Ok(Jws {
        header,
        claims,
        signing_input,
        signature,
    })
}

/// Only the claims of `token`, unverified: to find whose keys verify it.
pub(super) fn unverified_claims(
    token: &str,
    max_bytes: usize,
    what: &str,
) -> Result<Map<String, Value>, String> {
    let (_, payload, _) = split(token, max_bytes, what)?;
    json_object(payload, what, "payload")
}

/// A string member of a header or claims set.
pub(super) fn str_member<'a>(members: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    members.get(name).and_then(Value::as_str)
}

/// A NumericDate member (RFC 7519 §2) in whole seconds: `None` if absent, an error if it is
/// not a number.
pub(super) fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            // Fractional seconds are allowed; `as` saturates, so a huge float stays huge.
            .or_else(|| value.as_f64().map(|f| f.floor() as i64))
            .map(Some)
            .ok_or_else(|| format!("{what} {name} must be a number of seconds")),
    }
}

/// A `jti`: a non-empty string of at most 256 bytes, as the replay cache keeps it.
pub(super) fn jti(claims: &Map<String, Value>, what: &str) -> Result<String, String> {
    match str_member(claims, "jti") {
        Some(jti) if !jti.is_empty() && jti.len() <= 256 => Ok(jti.to_owned()),
        Some(_) => Err(format!("{what} jti must be 1 to 256 bytes")),
        None => Err(format!("{what} has no jti")),
    }
}

fn split<'a>(
    token: &'a str,
    max_bytes: usize,
    what: &str,
) -> Result<(&'a str, &'a str, &'a str), String> {
    if token.len() > max_bytes {
        return Err(format!("{what} is longer than {max_bytes} bytes"));
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok((header, payload, signature)),
        _ => Err(format!(
            "{what} is not a compact JWS (three base64url parts separated by dots)"
        )),
    }
}

fn json_object(part: &str, what: &str, name: &str) -> Result<Map<String, Value>, String> {
    let raw = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("{what} {name} is not base64url without padding"))?;
    match serde_json::from_slice(&raw) {
        Ok(Value::Object(members)) => Ok(members),
        _ => Err(format!("{what} {name} is not a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    #[test]
    fn decodes_the_three_parts_and_keeps_the_signing_input() {
        let token = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"ES256"}"#),
            b64(r#"{"a":1}"#),
            b64("sig")
        );
        let jws = decode(&token, 8192, "proof").unwrap();
        assert_eq!(str_member(&jws.header, "alg"), Some("ES256"));
        assert_eq!(jws.claims["a"], 1);
        assert_eq!(jws.signature, b"sig");
        assert_eq!(
            jws.signing_input,
            format!("{}.{}", b64(r#"{"alg":"ES256"}"#), b64(r#"{"a":1}"#))
        );
    }

    #[test]
    fn refuses_malformed_oversized_and_crit() {
        let h = b64(r#"{"alg":"ES256"}"#);
        let p = b64("{}");
        let err = |token: &str| decode(token, 100, "proof").err().unwrap();
        assert!(err(&format!("{h}.{p}")).contains("three base64url parts"));
        assert!(err(&format!("{h}.{p}.x.y")).contains("three base64url parts"));
        assert!(err(&format!("{h}.{p}=.")).contains("payload is not base64url"));
        assert!(err(&format!("{h}.{}.", b64("[1]"))).contains("payload is not a JSON object"));
        assert!(err(&format!("{}.{p}.", b64("nope"))).contains("header is not a JSON object"));
        assert!(err(&format!("{h}.{p}.a+b")).contains("signature is not base64url"));
        assert!(err(&"a".repeat(101)).contains("longer than 100 bytes"));
        let crit = b64(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#);
        assert!(err(&format!("{crit}.{p}.")).contains("crit"));
    }

    #[test]
    fn numeric_dates_and_jti() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"exp":10,"iat":10.9,"nbf":"soon","jti":""}"#).unwrap();
        assert_eq!(numeric_date(&claims, "exp", "x"), Ok(Some(10)));
        assert_eq!(numeric_date(&claims, "iat", "x"), Ok(Some(10)));
        assert_eq!(numeric_date(&claims, "none", "x"), Ok(None));
        assert!(numeric_date(&claims, "nbf", "x").is_err());
        assert!(jti(&claims, "x").unwrap_err().contains("1 to 256 bytes"));
        let long: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"jti": "j".repeat(257)})).unwrap();
        assert!(jti(&long, "x").is_err());
        assert!(jti(&Map::new(), "x").unwrap_err().contains("no jti"));
    }
}
