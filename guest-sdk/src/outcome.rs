//! Reading an execution's outcome, the prelude's `state`, into the WIT result.
//!
//! The prelude's `read()` is the reference: it checks the token, serializes each claim
//! with `JSON.stringify` and describes errors. Most tokens, though, are a plain object
//! holding an array of strings and claims that are strings, numbers, booleans or null;
//! [`Reader::token`] reads those here, at a fraction of the cost, and gives up (`None`)
//! on anything else, whereupon `read()` runs. Giving up is always safe: reading here
//! calls no JS, runs no getter and changes nothing, so `read()` then sees what it would
//! have seen. What is read here is only read where `read()` would have called nothing a
//! rule can replace, and the result is the same token.

use javy::quickjs::{qjs, Ctx, Object};

use crate::bindings::tokenhost::rule::types::{
    AccessToken, Claim, FailureKind, RuleError, RuleFailure,
};
use crate::builtins::Builtins;
use crate::js::{class_id, keep_atom, primitive, Atom, Js, Kept, Own, Primitive};

/// Arrays longer than this are left to the prelude.
const MAX_FAST_SCOPE: i64 = 1024;

/// What reading an outcome needs, made at initialization.
pub struct Reader {
    state: Kept,
    /// The strings `state.kind` holds for a legacy token and for a finished action.
    token_kind: Kept,
    action_kind: Kept,
    settled: Atom,
    kind: Atom,
    value: Atom,
    scope: Atom,
    claims: Atom,
    object_class: u32,
    array_class: u32,
    /// The built-ins `read()` calls, as the prelude found them.
    builtins: Builtins,
}

impl Reader {
    /// Reads the prelude's `layout()`.
    pub fn new<'js>(
        cx: &Ctx<'js>,
        layout: &Object<'js>,
        builtins: Builtins,
    ) -> javy::quickjs::Result<Reader> {
        let string = |s: &str| -> javy::quickjs::Result<Kept> {
            Ok(Kept::keep(
                &javy::quickjs::String::from_str(cx.clone(), s)?.into_value(),
            ))
        };
        Ok(Reader {
            state: Kept::property(layout, "state")?,
            token_kind: string("token")?,
            action_kind: string("action")?,
            settled: keep_atom(cx, "settled"),
            kind: keep_atom(cx, "kind"),
            value: keep_atom(cx, "value"),
            scope: keep_atom(cx, "scope"),
            claims: keep_atom(cx, "claims"),
            object_class: class_id(builtins.object_prototype.raw()),
            array_class: class_id(builtins.array_prototype.raw()),
            builtins,
        })
    }

    /// The token of a settled legacy rule or finished action, when it can be read here.
    pub fn token(&self, js: Js) -> Option<AccessToken> {
        let token = self.settled_token(js);
        if token.is_none() {
            // A failed QuickJS call may have left an exception; read() starts clean.
            js.clear_exception();
        }
        token
    }

    fn settled_token(&self, js: Js) -> Option<AccessToken> {
        let state = self.state.raw();
        let settled = js.get(state, self.settled)?;
        if !matches!(primitive(settled.raw()), Primitive::Bool(true)) {
            return None;
        }
        // read() goes over the token's keys with for-of.
        if !self.builtins.iteration_intact(js) {
            return None;
        }
        let kind = js.get(state, self.kind)?;
        let value = js.get(state, self.value)?;
        if js.strict_equal(kind.raw(), self.token_kind.raw()) {
            self.legacy_token(js, value.raw())
        } else if js.strict_equal(kind.raw(), self.action_kind.raw()) {
            // `finish`'s `{scope, claims}`, which `read()` passes on as they are.
            let scope = js.get(value.raw(), self.scope)?;
            let claims = js.get(value.raw(), self.claims)?;
            Some(AccessToken {
                scope: self.strings(js, scope.raw())?,
                custom_claims: self.claims(js, claims.raw(), false)?,
            })
        } else {
            None
        }
    }

    /// `cb(null, token)`'s token, as `describeToken` reads it.
    fn legacy_token(&self, js: Js, token: qjs::JSValue) -> Option<AccessToken> {
        if class_id(token) != self.object_class {
            return None;
        }
        let scope = match js.own(token, self.scope)? {
            Own::Data { value, .. } if value.is_undefined() => Vec::new(),
            Own::Data { value, .. } => self.token_scope(js, value.raw())?,
            Own::Accessor { .. } => return None,
            // `token.scope` then comes from the prototype: only read here when that is
            // null or an Object.prototype without `scope`.
            Own::Absent => {
                let proto = js.prototype(token)?;
                let plain = proto.raw() == self.builtins.object_prototype.raw()
                    && matches!(js.own(proto.raw(), self.scope)?, Own::Absent);
                if !(plain || primitive_is_null(proto.raw())) {
                    return None;
                }
                Vec::new()
            }
        };
        Some(AccessToken {
            scope,
            custom_claims: self.claims(js, token, true)?,
        })
    }

    /// `token.scope`, which `describeToken` checks with `every` and copies with `slice`:
    /// read here only while both, and the `constructor` and species `slice` consults, are
    /// the built-ins.
    fn token_scope(&self, js: Js, scope: qjs::JSValue) -> Option<Vec<String>> {
        if class_id(scope) != self.array_class {
            return None;
        }
        let b = &self.builtins;
        let constructor = qjs::JS_ATOM_constructor as Atom;
        for atom in [b.every, b.slice, constructor] {
            if !matches!(js.own(scope, atom)?, Own::Absent) {
                return None;
            }
        }
        let intact = js.prototype(scope)?.raw() == b.array_prototype.raw()
            && Builtins::holds(js, b.array_prototype, b.every, b.array_every)
            && Builtins::holds(js, b.array_prototype, b.slice, b.array_slice)
            && Builtins::holds(js, b.array_prototype, constructor, b.array)
            && b.species_intact(js);
        if !intact {
            return None;
        }
        self.strings(js, scope)
    }

    /// An array of strings, each element an own data property (no hole, no getter).
    fn strings(&self, js: Js, array: qjs::JSValue) -> Option<Vec<String>> {
        if class_id(array) != self.array_class {
            return None;
        }
        let length = js.length(array)?;
        if !(0..=MAX_FAST_SCOPE).contains(&length) {
            return None;
        }
        let mut strings = Vec::with_capacity(length as usize);
        for i in 0..length as u32 {
            let Own::Data { value: item, .. } = js.own(array, js.index(i))? else {
                return None;
            };
            if !matches!(primitive(item.raw()), Primitive::String) {
                return None;
            }
            strings.push(js.utf8(item.raw())?);
        }
        Some(strings)
    }

    /// `describeClaims`: each own enumerable key's value as JSON, `undefined` left out.
    fn claims(&self, js: Js, object: qjs::JSValue, skip_scope: bool) -> Option<Vec<Claim>> {
        if class_id(object) != self.object_class {
            return None;
        }
        let keys = js.keys(object)?;
        let mut claims = Vec::new();
        for atom in keys.atoms() {
            if skip_scope && atom == self.scope {
                continue;
            }
            let Own::Data { value, .. } = js.own(object, atom)? else {
                return None;
            };
            if value.is_undefined() {
                continue;
            }
            // `describeClaims` pushes each claim onto an array.
            let b = &self.builtins;
            if claims.is_empty() && !Builtins::holds(js, b.array_prototype, b.push, b.array_push) {
                return None;
            }
            claims.push(Claim {
                name: js.atom_utf8(atom)?,
                value: claim_json(js, value.raw())?,
            });
        }
        Some(claims)
    }
}

fn primitive_is_null(value: qjs::JSValue) -> bool {
    matches!(primitive(value), Primitive::Null)
}

/// `JSON.stringify` of a string, number, boolean or null; `None` for anything else. The
/// text may differ from QuickJS's in which characters it escapes, never in what it means.
fn claim_json(js: Js, value: qjs::JSValue) -> Option<String> {
    match primitive(value) {
        Primitive::String => Some(json_string(&js.utf8(value)?)),
        Primitive::Int(n) => Some(n.to_string()),
        // JSON writes a finite number as JS spells it, anything else as null.
        Primitive::Float(f) if f.is_finite() => js.utf8(value),
        Primitive::Float(_) | Primitive::Null => Some("null".to_string()),
        Primitive::Bool(b) => Some(b.to_string()),
        Primitive::Undefined | Primitive::Other => None,
    }
}

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
