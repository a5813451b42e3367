// The rule's environment and the glue between a rule and the host.
//
// Evaluated once, before the rule's own source, while the runtime is pre-initialized, so
// none of it costs anything per execution. That includes the rule's arguments (`client`,
// `scope`, `context`, `cb`, the Actions `event` and `api`) and the `state` an outcome lands
// in: every execution starts from the snapshot, so lib.rs fills them in place rather than
// anything building them per call. The prelude evaluates to an object of functions the
// Rust side keeps: `checkLoaded` decides the rule's style, `layout` then tells lib.rs where
// the inputs go, `run` starts one execution, `read` turns its state into a plain outcome
// that Rust copies into the WIT result (Rust reads plain tokens itself, to the same
// result), `compileError` describes a failed evaluation.
//
// Two styles of rule, one outcome: the legacy `module.exports = function (client, scope,
// audience, context, cb)` and the Actions `exports.onExecuteCredentialsExchange = async
// (event, api) => {...}`. Both settle the same state (first outcome wins) and are read the
// same way.
//
// `__th_log`, `__th_random` and `__th_cache_*` are natives registered by lib.rs; they are
// removed from the global object here so a rule only ever reaches them through `console`,
// `Math.random` and `api.cache`.
(function () {
  'use strict';
  const g = globalThis;
  const nativeLog = g.__th_log;
  const nativeRandom = g.__th_random;
  const nativeCacheGet = g.__th_cache_get;
  const nativeCacheSet = g.__th_cache_set;
  const nativeCacheDelete = g.__th_cache_delete;
  delete g.__th_log;
  delete g.__th_random;
  delete g.__th_cache_get;
  delete g.__th_cache_set;
  delete g.__th_cache_delete;

  // Captured now: a rule may overwrite globals, but only for its own execution, and the
  // glue must keep working while it does.
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const isArray = Array.isArray;
  const keys = Object.keys;
  const PromiseResolve = Promise.resolve.bind(Promise);
  const StringOf = String;
  const createObject = Object.create;
  const describe = Object.getOwnPropertyDescriptor;
  const protoOf = Object.getPrototypeOf;
  const hasOwn = Object.prototype.hasOwnProperty;
  const DateNow = Date.now;

  // The built-ins the glue's JS uses on every execution, as they are before the rule is
  // evaluated. lib.rs skips that JS only while the rule has left them as they are (it
  // checks their descriptors, calling nothing), so that skipping it is invisible.
  const BUILTINS = {
    objectPrototype: Object.prototype,
    arrayPrototype: Array.prototype,
    arrayIteratorPrototype: protoOf([][Symbol.iterator]()),
    iteratorPrototype: protoOf(protoOf([][Symbol.iterator]())),
    array: Array,
    arrayIterator: Array.prototype[Symbol.iterator],
    arrayIteratorNext: protoOf([][Symbol.iterator]()).next,
    arrayEvery: Array.prototype.every,
    arraySlice: Array.prototype.slice,
    arrayPush: Array.prototype.push,
    arraySpecies: describe(Array, Symbol.species).get,
    objectProtoSetter: describe(Object.prototype, '__proto__').set,
  };

  const LEVEL = { debug: 0, info: 1, warn: 2, error: 3 };

  function show(value) {
    if (typeof value === 'string') return value;
    try {
      if (value instanceof Error) {
        return value.stack ? value.name + ': ' + value.message + '\n' + value.stack : StringOf(value);
      }
      if (typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') {
        return StringOf(value);
      }
      const json = stringify(value);
      return json === undefined ? StringOf(value) : json;
    } catch (e) {
      try {
        return StringOf(value);
      } catch (_) {
        return '[unprintable]';
      }
    }
  }

  function logAt(level) {
    return function () {
      const parts = [];
      for (let i = 0; i < arguments.length; i++) parts.push(show(arguments[i]));
      nativeLog(level, parts.join(' '));
    };
  }

  g.console = {
    log: logAt(LEVEL.info),
    info: logAt(LEVEL.info),
    debug: logAt(LEVEL.debug),
    warn: logAt(LEVEL.warn),
    error: logAt(LEVEL.error),
  };

  Math.random = function random() {
    return nativeRandom();
  };

  // The typed errors of the original platform, as globals.
  function typedError(name) {
    const E = class extends Error {
      constructor(message) {
        super(message);
        this.name = name;
      }
    };
    Object.defineProperty(E, 'name', { value: name });
    Object.defineProperty(E.prototype, 'name', { value: name, writable: true, configurable: true });
    return E;
  }
  g.InvalidScopeError = typedError('InvalidScopeError');
  g.InvalidRequestError = typedError('InvalidRequestError');
  g.UnauthorizedClientError = typedError('UnauthorizedClientError');
  g.ServerError = typedError('ServerError');

  // No modules, filesystem, network or environment: say so clearly instead of a bare
  // "require is not defined".
  g.require = function require(name) {
    throw new ReferenceError(
      "require('" + StringOf(name) + "') is not available: tokenhost rules run without modules, filesystem, network or environment"
    );
  };

  g.module = { exports: {} };
  g.exports = g.module.exports;

  const DECISIONS = {
    Error: 'access_denied',
    InvalidScopeError: 'invalid_scope',
    InvalidRequestError: 'invalid_request',
    UnauthorizedClientError: 'unauthorized_client',
    ServerError: 'server_error',
  };

  function failure(kind, name, message, stack) {
    return { ok: false, code: 'failure', kind, name, message, stack: stack === undefined ? null : stack };
  }

  function safeGet(object, key) {
    try {
      return object[key];
    } catch (_) {
      return undefined;
    }
  }

  function safeString(value) {
    try {
      return StringOf(value);
    } catch (_) {
      return '[unprintable]';
    }
  }

  // How a rule's error is read: by its name (CONTRACT.md, "How a rule's outcome is read").
  function describeError(e) {
    if (typeof e === 'string') return { ok: false, code: 'access_denied', message: e };
    if (e === null || (typeof e !== 'object' && typeof e !== 'function')) {
      return failure('exception', typeof e, 'the rule threw a ' + typeof e + ' value: ' + safeString(e));
    }
    const name = safeString(safeGet(e, 'name'));
    const rawMessage = safeGet(e, 'message');
    const message = rawMessage === undefined ? '' : safeString(rawMessage);
    const stack = safeGet(e, 'stack');
    const code = Object.prototype.hasOwnProperty.call(DECISIONS, name) ? DECISIONS[name] : undefined;
    if (code !== undefined) return { ok: false, code, message };
    const trace = typeof stack === 'string' ? stack : undefined;
    if (name === 'InternalError' && message === 'out of memory') {
      return failure('out-of-memory', name, 'the rule ran out of memory', trace);
    }
    if (name === 'InternalError' && message === 'string too long') {
      return failure('out-of-memory', name, 'the rule built a string over the maximum length', trace);
    }
    if (name === 'RangeError' && message.indexOf('stack') !== -1) {
      return failure('stack-overflow', name, message, trace);
    }
    return failure('exception', name, message, trace);
  }

  function claimJson(name, value) {
    return stringify(value, function (key, inner) {
      const type = typeof inner;
      if (type === 'function' || type === 'symbol') {
        const where = key === '' ? '' : ' (at key "' + key + '")';
        throw new TypeError('claim "' + name + '" holds a ' + type + where + ', which a token cannot carry');
      }
      return inner;
    });
  }

  function describeToken(token) {
    if (token === null || typeof token !== 'object' || isArray(token)) {
      const what = token === null ? 'null' : isArray(token) ? 'an array' : 'a ' + typeof token;
      return failure('invalid-result', 'TypeError', 'cb(null, token) needs a token object, got ' + what);
    }
    let scope = [];
    const rawScope = token.scope;
    if (rawScope !== undefined) {
      if (!isArray(rawScope) || !rawScope.every((s) => typeof s === 'string')) {
        return failure('invalid-result', 'TypeError', 'token.scope must be an array of strings');
      }
      scope = rawScope.slice();
    }
    return describeClaims(token, scope, true);
  }

  // Claims as [name, JSON] pairs; `undefined` values are no claim. `scope` is the token's
  // scope field for a legacy token, an ordinary (and so dropped, reserved) name otherwise.
  function describeClaims(object, scope, scopeIsField) {
    const claims = [];
    for (const name of keys(object)) {
      if (scopeIsField && name === 'scope') continue;
      const value = object[name];
      if (value === undefined) continue;
      let json;
      try {
        json = claimJson(name, value);
      } catch (e) {
        const why = safeString(safeGet(e, 'message'));
        return failure('invalid-result', 'TypeError', 'claim "' + name + '" cannot be serialized: ' + why);
      }
      claims.push([name, json]);
    }
    return { ok: true, scope, claims };
  }

  // The rule's style, decided by checkLoaded while the runtime is pre-initialized.
  let style = 'legacy';

  // One execution's arguments and outcome, built once, here. Every execution starts from
  // the snapshot, so lib.rs only fills them in, assigning to these empty objects and arrays
  // what it once assigned to new ones: the rule still gets fresh objects every time,
  // without paying to build them. None of them is reachable by the rule until `run`
  // passes it on.
  const client = {};
  const metadata = {};
  const scope = [];
  const request = {};
  const body = {};
  const secrets = {};
  // The token as earlier rules of the chain left it.
  const priorScope = [];
  const priorClaims = {};
  // How the client proved itself (the same object in both styles); `dpop` is given to the
  // rule's `context` or `event` only when a DPoP proof came with the request.
  const clientAuthentication = { method: '', credential_id: null };
  const dpop = { jkt: '' };

  // lib.rs fills `priorClaims` itself, which skips the array iteration the claims once went
  // through here; when the rule has replaced the iteration built-ins, that would show, so
  // lib.rs passes the claims as [name, JSON] pairs and they are parsed here as before.
  function parsePriorClaims(pairs) {
    for (const [name, json] of pairs) priorClaims[name] = parse(json);
  }

  // What lib.rs reads back: `kind` names the first outcome, `value` carries it.
  const state = { settled: false, kind: undefined, value: undefined };

  function settle(kind, value) {
    if (state.settled) {
      nativeLog(LEVEL.warn, 'tokenhost: the rule gave a second outcome (' + kind + ') after its first; ignored');
      return;
    }
    state.settled = true;
    state.kind = kind;
    state.value = value;
  }

  // The legacy style's context and callback.
  const context = {
    ip: undefined,
    userAgent: undefined,
    hostname: undefined,
    request,
    webtask: { secrets },
    secrets,
    accessToken: { scope: priorScope, customClaims: priorClaims },
    clientAuthentication,
  };
  // Indented as they were when each execution created them, so that a rule printing one
  // still sees the same source text.
  const [cb, onResolved, onRejected] = (function () {
    return [
    function cb(err, token) {
      if (err) settle('error', err);
      else settle('token', token);
    },
          (value) => {
            if (value !== undefined) settle('token', value);
          },
          (e) => settle('error', e)
    ];
  })();

  // The Actions style (CONTRACT.md, "The successor's API").

  const ACTION_EXPORT = 'onExecuteCredentialsExchange';
  // api.access.deny's codes: the successor platform's three, plus our two.
  const DENY_CODES = ['invalid_scope', 'invalid_request', 'server_error', 'access_denied', 'unauthorized_client'];

  function actionHandler() {
    const exported = g.module.exports;
    if (exported === null || (typeof exported !== 'object' && typeof exported !== 'function')) return undefined;
    const handler = exported[ACTION_EXPORT];
    return typeof handler === 'function' ? handler : undefined;
  }

  function typeOf(value) {
    return value === null ? 'null' : isArray(value) ? 'an array' : 'a ' + typeof value;
  }

  function needString(what, value) {
    if (typeof value !== 'string') throw new TypeError(what + ' must be a string, got ' + typeOf(value));
  }

  // A limit the host refused is the successor platform's CacheWriteResult, not an
  // exception: a cache is best effort, and a rule should not fail a token over it. A wrong
  // argument type is a bug in the rule and throws.
  const cacheApi = {
    get(key) {
      needString('api.cache.get(key): key', key);
      return nativeCacheGet(key);
    },
    set(key, value, options) {
      needString('api.cache.set(key, value): key', key);
      needString('api.cache.set(key, value): value', value);
      let ttl = null;
      if (options !== undefined && options !== null) {
        if (options.ttl !== undefined) {
          if (typeof options.ttl !== 'number') {
            throw new TypeError('api.cache.set: options.ttl must be a number of milliseconds, got ' + typeOf(options.ttl));
          }
          ttl = options.ttl;
        } else if (options.expires_at !== undefined) {
          if (typeof options.expires_at !== 'number') {
            throw new TypeError('api.cache.set: options.expires_at must be milliseconds since the epoch, got ' + typeOf(options.expires_at));
          }
          ttl = options.expires_at - DateNow();
        }
      }
      const refused = nativeCacheSet(key, value, ttl);
      return refused === undefined ? { type: 'success' } : { type: 'error', code: refused.code, message: refused.message };
    },
    delete(key) {
      needString('api.cache.delete(key): key', key);
      nativeCacheDelete(key);
      return { type: 'success' };
    },
  };

  // The claims and scopes the action sets. Prototype-less, so a claim named `__proto__` is
  // a claim like any other.
  const claims = createObject(null);
  let granted;
  // Built in the order, and indented as, each execution built them before.
  const api = {};
  (function () {
    api.accessToken = {
      setCustomClaim(name, value) {
        needString('api.accessToken.setCustomClaim(name, value): name', name);
        claims[name] = value;
        return api;
      },
      addScope(name) {
        needString('api.accessToken.addScope(scope)', name);
        if (granted.indexOf(name) === -1) granted.push(name);
        return api;
      },
      removeScope(name) {
        needString('api.accessToken.removeScope(scope)', name);
        const at = granted.indexOf(name);
        if (at !== -1) granted.splice(at, 1);
        return api;
      },
    };
    api.access = {
      deny(code, reason) {
        if (DENY_CODES.indexOf(code) === -1) {
          throw new TypeError('api.access.deny(code, reason): code must be one of ' + DENY_CODES.join(', ') + ', not ' + show(code));
        }
        settle('denied', { code, message: reason === undefined ? '' : safeString(reason) });
        return api;
      },
    };
  })();
  api.cache = cacheApi;
  const event = {
    client: { client_id: undefined, name: undefined, metadata: undefined },
    resource_server: { identifier: undefined },
    request,
    transaction: { requested_scopes: scope },
    accessToken: { scope: priorScope, customClaims: priorClaims },
    tenant: { id: undefined },
    secrets,
    client_authentication: clientAuthentication,
  };
  // Finishing issues the token as it stands then; a deny before that already decided.
  const [finish, onActionRejected] = (function () {
    const finish = function () {
      if (!state.settled) settle('action', { scope: granted.slice(), claims: copyClaims(claims) });
    };
    return [finish, (e) => settle('error', e)];
  })();

  function runAction(audience, priorPairs) {
    granted = scope.slice();
    // Read from `client` in the order each execution once built `event` from it.
    const eventClient = event.client;
    eventClient.client_id = client.id;
    eventClient.name = client.name;
    eventClient.metadata = client.metadata;
    event.resource_server.identifier = audience;
    if (priorPairs !== undefined) parsePriorClaims(priorPairs);
    event.tenant.id = client.tenant;
    const handler = actionHandler();
    if (handler === undefined) {
      throw new TypeError('exports.onExecuteCredentialsExchange is not a function: the rule replaced it after it was loaded');
    }
    const returned = handler(event, api);
    if (returned !== null && (typeof returned === 'object' || typeof returned === 'function') && typeof returned.then === 'function') {
      PromiseResolve(returned).then(finish, onActionRejected);
    } else {
      finish();
    }
  }

  function copyClaims(claims) {
    const copy = createObject(null);
    for (const name of keys(claims)) copy[name] = claims[name];
    return copy;
  }

  // Starts one execution on the inputs lib.rs filled in; its outcome lands in `state`.
  function run(audience, priorPairs) {
    if (style === 'actions') {
      try {
        runAction(audience, priorPairs);
      } catch (e) {
        settle('error', e);
      }
      return;
    }
    // Read from `request` in the order each execution once built `context` from it.
    context.ip = request.ip;
    context.userAgent = request.user_agent;
    context.hostname = request.hostname;
    if (priorPairs !== undefined) parsePriorClaims(priorPairs);
    try {
      const rule = g.module.exports;
      if (typeof rule !== 'function') {
        throw new TypeError('module.exports is not a function: the rule replaced it after it was loaded');
      }
      const returned = rule(client, scope, audience, context, cb);
      if (returned !== null && (typeof returned === 'object' || typeof returned === 'function') && typeof returned.then === 'function') {
        // An async rule: its resolved value is the token, its rejection the error. An
        // async rule that calls cb resolves with undefined, which is no outcome of its own.
        PromiseResolve(returned).then(onResolved, onRejected);
      }
    } catch (e) {
      settle('error', e);
    }
  }

  // The outcome in `state`, as a plain object for lib.rs. (lib.rs reads the common
  // outcomes, tokens of plain values, itself; this is the reference it must agree with.)
  function read() {
    if (!state.settled) {
      if (style === 'actions') {
        return failure(
          'no-callback',
          'Error',
          'onExecuteCredentialsExchange never finished: it was still waiting on a promise that nothing left could settle'
        );
      }
      return failure('no-callback', 'Error', 'rule finished without calling cb');
    }
    switch (state.kind) {
      case 'token':
        return describeToken(state.value);
      case 'action':
        return describeClaims(state.value.claims, state.value.scope, false);
      case 'denied':
        return { ok: false, code: state.value.code, message: state.value.message };
      default:
        return describeError(state.value);
    }
  }

  // What lib.rs needs, once the rule is loaded, to fill in the inputs and to read outcomes
  // itself where that is invisible.
  function layout() {
    const dpopHolder = style === 'actions' ? event : context;
    return {
      client, metadata, scope, request, body, secrets, priorScope, priorClaims,
      clientAuthentication, dpop, dpopHolder, state, builtins: BUILTINS,
    };
  }

  function location(e, field, pattern) {
    const direct = safeGet(e, field);
    if (typeof direct === 'number') return direct;
    const stack = safeGet(e, 'stack');
    const match = typeof stack === 'string' ? pattern.exec(stack) : null;
    return match ? Number(match[1]) : 0;
  }

  function compileError(e) {
    const described = describeError(e);
    const name = e !== null && typeof e === 'object' ? safeString(safeGet(e, 'name')) : typeof e;
    return stringify({
      ok: false,
      name,
      message: described.message,
      line: location(e, 'lineNumber', /rule\.js:(\d+)/),
      column: location(e, 'columnNumber', /rule\.js:\d+:(\d+)/),
    });
  }

  function checkLoaded() {
    const rule = g.module.exports;
    if (typeof rule === 'function') {
      style = 'legacy';
      return stringify({ ok: true, style });
    }
    if (actionHandler() !== undefined) {
      style = 'actions';
      return stringify({ ok: true, style });
    }
    return stringify({
      ok: false,
      name: 'TypeError',
      message:
        'the rule must set module.exports = function (client, scope, audience, context, cb) { ... }' +
        ' or exports.onExecuteCredentialsExchange = async (event, api) => { ... }',
      line: 0,
      column: 0,
    });
  }

  // QuickJS creates each built-in method (Array.prototype.push, Object.keys, ...) lazily,
  // on its first access. Every execution starts from the snapshot, so a method first used
  // by an execution would be created again by every execution: create them all now. The
  // walk reads descriptors, never calls a getter, and only reaches built-ins (the rule is
  // not evaluated yet), so it changes nothing a rule can observe.
  (function materializeBuiltins() {
    const ownKeys = Reflect.ownKeys;
    const seen = new Set();
    const pending = [
      g,
      [][Symbol.iterator](),
      new Map().entries(),
      new Set().values(),
      ''[Symbol.iterator](),
      /./g[Symbol.matchAll](''),
      function* () {},
      async function () {},
      async function* () {},
    ];
    while (pending.length > 0) {
      const o = pending.pop();
      if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) continue;
      seen.add(o);
      for (const key of ownKeys(o)) {
        const d = describe(o, key);
        pending.push(d.value, d.get, d.set);
      }
      pending.push(protoOf(o));
    }
  })();

  return { run, read, layout, compileError, checkLoaded };
})();
