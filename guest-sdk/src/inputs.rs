//! One execution's inputs, written into the objects the prelude built once.
//!
//! The prelude builds the rule's arguments (`client`, `scope`, `context`, or the Actions
//! `event` and `api`) before the snapshot is taken, around empty objects and arrays that
//! this file fills. Every execution starts from the pristine snapshot, so filling them
//! gives the rule the same fresh objects building them would, for a fraction of the work.
//! The properties are assigned exactly as they were on new objects, in the same order and
//! with the same [[Set]], so even a rule that put setters on `Object.prototype` sees no
//! difference.

use javy::quickjs::{Ctx, Object};

use crate::bindings::tokenhost::rule::client_proof::Proof;
use crate::bindings::tokenhost::rule::types::{Claim, Client, Context};
use crate::js::{keep_atom, Atom, Js, Kept, Owned};

/// Where one execution's inputs go.
pub struct Inputs {
    client: Kept,
    metadata: Kept,
    scope: Kept,
    request: Kept,
    body: Kept,
    secrets: Kept,
    prior_scope: Kept,
    prior_claims: Kept,
    client_authentication: Kept,
    dpop: Kept,
    /// The rule's `context` or `event`, which gets `dpop` when a proof came.
    dpop_holder: Kept,
    keys: Keys,
    /// Whether `priorClaims` may be filled here rather than by the prelude's own loop
    /// (see [`Inputs::new`]).
    claims_here: bool,
}

/// The property names the inputs are assigned to.
struct Keys {
    id: Atom,
    name: Atom,
    tenant: Atom,
    metadata: Atom,
    ip: Atom,
    user_agent: Atom,
    hostname: Atom,
    method: Atom,
    body: Atom,
    credential_id: Atom,
    jkt: Atom,
    dpop: Atom,
}

/// How the inputs failed to go in (QuickJS out of memory): the message to report.
pub struct Unfilled(pub String);

impl Inputs {
    /// Reads the prelude's `layout()`, once the rule is loaded. `claims_here`: whether
    /// filling `priorClaims` here is invisible, which it is while the prelude's loop over
    /// `[name, JSON]` pairs would call only built-ins and nothing else of the rule's could
    /// run between it and the assignments before it.
    pub fn new<'js>(
        cx: &Ctx<'js>,
        layout: &Object<'js>,
        claims_here: bool,
    ) -> javy::quickjs::Result<Inputs> {
        let kept = |name: &str| Kept::property(layout, name);
        Ok(Inputs {
            client: kept("client")?,
            metadata: kept("metadata")?,
            scope: kept("scope")?,
            request: kept("request")?,
            body: kept("body")?,
            secrets: kept("secrets")?,
            prior_scope: kept("priorScope")?,
            prior_claims: kept("priorClaims")?,
            client_authentication: kept("clientAuthentication")?,
            dpop: kept("dpop")?,
            dpop_holder: kept("dpopHolder")?,
            keys: Keys {
                id: keep_atom(cx, "id"),
                name: keep_atom(cx, "name"),
                tenant: keep_atom(cx, "tenant"),
                metadata: keep_atom(cx, "metadata"),
                ip: keep_atom(cx, "ip"),
                user_agent: keep_atom(cx, "user_agent"),
                hostname: keep_atom(cx, "hostname"),
                method: keep_atom(cx, "method"),
                body: keep_atom(cx, "body"),
                credential_id: keep_atom(cx, "credential_id"),
                jkt: keep_atom(cx, "jkt"),
                dpop: keep_atom(cx, "dpop"),
            },
            claims_here,
        })
    }

    /// Gives `client` and `request` their properties (empty strings), in the order `fill`
    /// assigns them, so that in the snapshot they already have the shape every execution
    /// gives them. Only done when that is invisible: when assigning them runs nothing of the
    /// rule's, which makes a property created now and one assigned later the same.
    pub fn preshape(&self, js: Js) -> Result<(), Unfilled> {
        let k = &self.keys;
        let client_texts = [k.id, k.name, k.tenant];
        let request_texts = [k.ip, k.user_agent, k.hostname, k.method];
        let shapes = [
            (self.client, &client_texts[..], k.metadata, self.metadata),
            (self.request, &request_texts[..], k.body, self.body),
        ];
        for (object, texts, key, value) in shapes {
            for &text in texts {
                let empty = js.string("").ok_or_else(unfilled)?;
                if !js.set(object.raw(), text, empty) {
                    return Err(unfilled());
                }
            }
            if !js.set(object.raw(), key, js.dup(value.raw())) {
                return Err(unfilled());
            }
        }
        Ok(())
    }

    /// Writes one execution's inputs, in the order they were always written (`proof`, which
    /// came later, last but for the prior claims). Returns what `run` takes after the
    /// audience: the prior claims as `[name, JSON]` pairs when the prelude must parse them
    /// itself.
    pub fn fill<'js>(
        &self,
        js: Js<'js>,
        cx: &Ctx<'js>,
        client: &Client,
        scope: &[String],
        context: &Context,
        proof: &Proof,
    ) -> Result<Owned<'js>, Unfilled> {
        let k = &self.keys;
        let set_text = |object: Kept, key: Atom, text: &str| -> Result<(), Unfilled> {
            let value = js.string(text).ok_or_else(unfilled)?;
            js.set(object.raw(), key, value)
                .then_some(())
                .ok_or_else(unfilled)
        };
        let set_object = |object: Kept, key: Atom, value: Kept| -> Result<(), Unfilled> {
            js.set(object.raw(), key, js.dup(value.raw()))
                .then_some(())
                .ok_or_else(unfilled)
        };

        set_text(self.client, k.id, &client.id)?;
        set_text(self.client, k.name, &client.name)?;
        set_text(self.client, k.tenant, &client.tenant)?;
        fill_strings(js, self.metadata, &client.metadata)?;
        set_object(self.client, k.metadata, self.metadata)?;

        fill_list(js, self.scope, scope)?;

        let request = &context.request;
        set_text(self.request, k.ip, &request.ip)?;
        set_text(self.request, k.user_agent, &request.user_agent)?;
        set_text(self.request, k.hostname, &request.hostname)?;
        set_text(self.request, k.method, &request.method)?;
        for field in &request.body {
            let value = json_value(js, cx, &field.value).ok_or_else(unfilled)?;
            if !js.set_str(self.body.raw(), &field.name, value) {
                return Err(unfilled());
            }
        }
        set_object(self.request, k.body, self.body)?;

        fill_strings(js, self.secrets, &context.secrets)?;

        let prior = &context.access_token;
        fill_list(js, self.prior_scope, &prior.scope)?;

        // The prelude's objects start as `{method: '', credential_id: null}` and `{jkt: ''}`,
        // and the holder without `dpop`: only what differs is written.
        let authentication = &proof.authentication;
        set_text(self.client_authentication, k.method, &authentication.method)?;
        if let Some(id) = &authentication.credential_id {
            set_text(self.client_authentication, k.credential_id, id)?;
        }
        if let Some(binding) = &proof.dpop {
            set_text(self.dpop, k.jkt, &binding.jkt)?;
            // Defined, as the literal `{..., dpop}` would: the rule's own properties of the
            // prototype chain cannot see or intercept it.
            if !js.define(self.dpop_holder.raw(), k.dpop, js.dup(self.dpop.raw())) {
                return Err(unfilled());
            }
        }

        if self.claims_here && fill_claims(js, cx, self.prior_claims, &prior.custom_claims) {
            return Ok(js.undefined());
        }
        let pairs = js.new_array().ok_or_else(unfilled)?;
        for (i, claim) in prior.custom_claims.iter().enumerate() {
            let pair = js.new_array().ok_or_else(unfilled)?;
            let name = js.string(&claim.name).ok_or_else(unfilled)?;
            let json = js.string(&claim.value).ok_or_else(unfilled)?;
            if !(js.set_index(pair.raw(), 0, name)
                && js.set_index(pair.raw(), 1, json)
                && js.set_index(pairs.raw(), i as u32, pair))
            {
                return Err(unfilled());
            }
        }
        Ok(pairs)
    }
}

fn unfilled() -> Unfilled {
    Unfilled(javy::quickjs::Error::Exception.to_string())
}

fn fill_strings(js: Js, object: Kept, pairs: &[(String, String)]) -> Result<(), Unfilled> {
    for (name, value) in pairs {
        let value = js.string(value).ok_or_else(unfilled)?;
        if !js.set_str(object.raw(), name, value) {
            return Err(unfilled());
        }
    }
    Ok(())
}

fn fill_list(js: Js, array: Kept, items: &[String]) -> Result<(), Unfilled> {
    for (i, item) in items.iter().enumerate() {
        let item = js.string(item).ok_or_else(unfilled)?;
        if !js.set_index(array.raw(), i as u32, item) {
            return Err(unfilled());
        }
    }
    Ok(())
}

/// A body field's JSON-encoded value as a JS value; a value that is not JSON stays the
/// string it is.
fn json_value<'js>(js: Js<'js>, cx: &Ctx<'js>, json: &str) -> Option<Owned<'js>> {
    if let Some(value) = simple_json(js, json) {
        return value;
    }
    match cx.json_parse(json) {
        Ok(value) => Some(js.dup(value.as_raw())),
        Err(_) => {
            let _ = cx.catch();
            js.string(json)
        }
    }
}

/// `JSON.parse(json)` for the few kinds of JSON text that make up nearly every input (a
/// string without escapes, a small integer, `true`, `false`, `null`), without running
/// QuickJS's JSON parser; `None` for any other text. `Some(None)`: QuickJS is out of memory.
fn simple_json<'js>(js: Js<'js>, json: &str) -> Option<Option<Owned<'js>>> {
    if let Some(inner) = json
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        let plain = !inner.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
        return plain.then(|| js.string(inner));
    }
    match json {
        "true" => return Some(Some(js.bool(true))),
        "false" => return Some(Some(js.bool(false))),
        "null" => return Some(Some(js.null())),
        _ => {}
    }
    // JSON's integers: no leading zero, no plus sign; "-0" is the number -0, left to QuickJS.
    let digits = json.strip_prefix('-').unwrap_or(json);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && json != "-0";
    if !canonical {
        return None;
    }
    json.parse::<i32>().ok().map(|n| Some(js.int(n)))
}

/// `priorClaims[name] = JSON.parse(value)` for each claim, as the prelude's loop does. On
/// a failure (a value that is not JSON, which the host never sends) the prelude's loop is
/// left to fail as it does.
fn fill_claims(js: Js, cx: &Ctx, object: Kept, claims: &[Claim]) -> bool {
    for claim in claims {
        let value = match simple_json(js, &claim.value) {
            Some(Some(value)) => value,
            Some(None) => {
                js.clear_exception();
                return false;
            }
            None => match cx.json_parse(claim.value.as_str()) {
                Ok(value) => js.dup(value.as_raw()),
                Err(_) => {
                    js.clear_exception();
                    return false;
                }
            },
        };
        if !js.set_computed(object.raw(), &claim.name, value) {
            js.clear_exception();
            return false;
        }
    }
    true
}
