//! Reading an execution's outcome into the WIT result: the prelude's `read()` turns its
//! state into a plain object, copied here.

use javy::quickjs::Object;

use crate::bindings::tokenhost::rule::types::{
    AccessToken, Claim, FailureKind, RuleError, RuleFailure,
};

/// `s` as a JSON string.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut rest = s;
    while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < '\u{20}') {
        out.push_str(&rest[..at]);
        let c = rest.as_bytes()[at];
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            c => out.push_str(&format!("\\u{c:04x}")),
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out.push('"');
    out
}

/// The plain outcome `read()` returns, copied into the WIT result.
pub fn read_outcome(outcome: &Object) -> javy::quickjs::Result<Result<AccessToken, RuleError>> {
    if outcome.get::<_, bool>("ok")? {
        let pairs: Vec<Vec<String>> = outcome.get("claims")?;
        let custom_claims = pairs
            .into_iter()
            .filter_map(|pair| {
                let mut it = pair.into_iter();
                Some(Claim {
                    name: it.next()?,
                    value: it.next()?,
                })
            })
            .collect();
        return Ok(Ok(AccessToken {
            scope: outcome.get("scope")?,
            custom_claims,
        }));
    }
    let code: String = outcome.get("code")?;
    let message: String = outcome.get("message")?;
    Ok(Err(match code.as_str() {
        "access_denied" => RuleError::AccessDenied(message),
        "invalid_scope" => RuleError::InvalidScope(message),
        "invalid_request" => RuleError::InvalidRequest(message),
        "unauthorized_client" => RuleError::UnauthorizedClient(message),
        "server_error" => RuleError::ServerError(message),
        _ => {
            let kind = match outcome.get::<_, String>("kind")?.as_str() {
                "out-of-memory" => FailureKind::OutOfMemory,
                "stack-overflow" => FailureKind::StackOverflow,
                "no-callback" => FailureKind::NoCallback,
                "invalid-result" => FailureKind::InvalidResult,
                _ => FailureKind::Exception,
            };
            RuleError::Failure(RuleFailure {
                kind,
                name: outcome.get("name")?,
                message,
                stack: outcome.get("stack")?,
            })
        }
    }))
}
