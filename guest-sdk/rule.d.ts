// Type declarations for tokenhost rules. List this file in a jsconfig.json (rules/ has
// one) and annotate the rule:
//
//   /** @type {TokenhostRule} */
//   module.exports = function (client, scope, audience, context, cb) { ... };
//
// Editors then complete `client`, `scope`, `audience`, `context` and `cb`, and
// `tsc -p rules/jsconfig.json` (`make lint` runs it) checks what you pass to `cb`.
// An Actions-style rule is annotated the same way:
//
//   /** @type {TokenhostAction} */
//   exports.onExecuteCredentialsExchange = async (event, api) => { ... };
//
// The runtime is QuickJS (ES2023) with no modules, filesystem, network or environment:
// `require` throws, `process` and `fetch` do not exist.

/** The OAuth client asking for a token. */
interface TokenhostClient {
  /** The client's `client_id`. */
  readonly id: string;
  readonly name: string;
  /** The server's tenant name (`default` unless configured). */
  readonly tenant: string;
  /** String key/values an administrator set on the client (`client_metadata`). */
  readonly metadata: Readonly<Record<string, string>>;
}

/** The HTTP request that asked for the token. */
interface TokenhostRequest {
  readonly ip: string;
  readonly user_agent: string;
  readonly hostname: string;
  readonly method: string;
  /** The form or JSON body's fields, the client secret removed. */
  readonly body: Readonly<Record<string, unknown>>;
}

/** The token as earlier rules of the chain left it. */
interface TokenhostTokenSoFar {
  readonly scope: string[];
  readonly customClaims: Readonly<Record<string, unknown>>;
}

/**
 * How the client authenticated: `client_secret_basic` (HTTP Basic), `client_secret_post`
 * (the secret in the body) or `private_key_jwt` (a signed client assertion). A string, so
 * that a method added later does not break a rule checking for these.
 */
type TokenhostClientAuthenticationMethod =
  | 'client_secret_basic'
  | 'client_secret_post'
  | 'private_key_jwt'
  | (string & {});

/** How the client proved itself. */
interface TokenhostClientAuthentication {
  readonly method: TokenhostClientAuthenticationMethod;
  /** The public-key credential that verified the client assertion; `null` for a secret. */
  readonly credential_id: string | null;
}

/** The DPoP proof (RFC 9449) that came with the request. */
interface TokenhostDpop {
  /** The RFC 7638 thumbprint of the proof's key, which the token's `cnf.jkt` carries. */
  readonly jkt: string;
}

interface TokenhostContext {
  /** The caller's address (from `X-Forwarded-For` only behind a trusted proxy). */
  readonly ip: string;
  readonly userAgent: string;
  readonly hostname: string;
  readonly request: TokenhostRequest;
  /** The rule's secrets (the original platform's spelling). */
  readonly webtask: { readonly secrets: Readonly<Record<string, string>> };
  /** The rule's secrets. */
  readonly secrets: Readonly<Record<string, string>>;
  /** The token so far, when several rules run in order. */
  readonly accessToken: TokenhostTokenSoFar;
  /** How the client proved itself. */
  readonly clientAuthentication: TokenhostClientAuthentication;
  /** Only when a DPoP proof came with the request (the property is absent otherwise). */
  readonly dpop?: TokenhostDpop;
}

/**
 * What a rule gives back. `scope` replaces the granted scopes (leave it out and the token
 * carries none: the original platform's behaviour). Every other key is a custom claim and
 * must be namespaced with an `http://` or `https://` URL; registered claims (`sub`, `aud`,
 * `exp`, ...) and others are dropped and reported in the rule's logs.
 */
interface TokenhostAccessToken {
  scope?: string[];
  [claim: string]: unknown;
}

/**
 * The callback: `cb(null, token)` issues the token; `cb(error)` refuses it. The first call
 * wins, later ones are ignored and logged.
 *  - `new Error(msg)` or a string: 403 `access_denied`
 *  - `InvalidScopeError`, `InvalidRequestError`, `UnauthorizedClientError`: 400 with that code
 *  - `ServerError`: 500 `server_error` with your message
 *  - anything else (a `TypeError`, a thrown number...): a rule failure, 500 with a generic
 *    description and the details in the rule's logs.
 */
type TokenhostCallback = {
  // `object` rather than TokenhostAccessToken: a token built up property by property
  // (`var t = {}; t['https://x/y'] = 1;`) has no index signature for TypeScript.
  (error: null | undefined, token: object): void;
  (error: Error | string): void;
};

/** A legacy-style rule: calls `cb` once. */
type TokenhostCallbackRule = (
  client: TokenhostClient,
  scope: string[],
  audience: string,
  context: TokenhostContext,
  cb: TokenhostCallback
) => void;

/** An `async` rule: returns (resolves to) the token, or throws (rejects) to refuse it. */
type TokenhostAsyncRule = (
  client: TokenhostClient,
  scope: string[],
  audience: string,
  context: TokenhostContext,
  cb: TokenhostCallback
) => Promise<TokenhostAccessToken | void>;

/** A rule in either style. */
type TokenhostRule = TokenhostCallbackRule | TokenhostAsyncRule;

/** `event` of an Actions-style rule: the same inputs as the legacy arguments. */
interface TokenhostEvent {
  readonly client: {
    readonly client_id: string;
    readonly name: string;
    /** String key/values an administrator set on the client (`client_metadata`). */
    readonly metadata: Readonly<Record<string, string>>;
  };
  /** The API the token is for: `identifier` is the audience. */
  readonly resource_server: { readonly identifier: string };
  /** `language` is never set: tokenhost keeps no `Accept-Language`. */
  readonly request: TokenhostRequest & { readonly language?: string };
  /** The scopes being granted. */
  readonly transaction: { readonly requested_scopes: string[] };
  /** The token as earlier rules of the chain left it. */
  readonly accessToken: TokenhostTokenSoFar;
  /** The server's tenant name. */
  readonly tenant: { readonly id: string };
  /** The rule's secrets. */
  readonly secrets: Readonly<Record<string, string>>;
  /** How the client proved itself. */
  readonly client_authentication: TokenhostClientAuthentication;
  /** Only when a DPoP proof came with the request (the property is absent otherwise). */
  readonly dpop?: TokenhostDpop;
}

/**
 * `api.access.deny` codes: 400 `invalid_scope`, `invalid_request`, `unauthorized_client`;
 * 403 `access_denied`; 500 `server_error` (the reason is passed on in every case).
 */
type TokenhostDenyCode =
  | 'invalid_scope'
  | 'invalid_request'
  | 'server_error'
  | 'access_denied'
  | 'unauthorized_client';

/** A cached value and its expiry (milliseconds since the Unix epoch). */
interface TokenhostCacheRecord {
  value: string;
  expires_at: number;
}

/** What `api.cache.set` and `delete` return: a limit refused is a result, not an exception. */
type TokenhostCacheWriteResult =
  | { type: 'success' }
  | { type: 'error'; code: 'key_too_long' | 'value_too_large' | 'invalid_ttl'; message: string };

/** `api` of an Actions-style rule. Every method returns `api` unless it says otherwise. */
interface TokenhostApi {
  readonly accessToken: {
    /** A custom claim; the same names are dropped as from a legacy rule's token. */
    setCustomClaim(name: string, value: unknown): TokenhostApi;
    /** Adds a scope to the token (the scopes being granted are kept otherwise). */
    addScope(scope: string): TokenhostApi;
    removeScope(scope: string): TokenhostApi;
  };
  readonly access: {
    /** Refuses the token. The first outcome wins: a later deny or exception is ignored. */
    deny(code: TokenhostDenyCode, reason: string): TokenhostApi;
  };
  /**
   * The rule's cache, kept by the host per rule and shared by its executions: at most 256
   * entries (the closest to expiry is evicted), keys up to 256 bytes, values up to 2 KiB,
   * 15 minutes unless `ttl` (ms, at most 24 h) or `expires_at` (ms since the epoch) says
   * otherwise. Best effort: in memory, emptied by a restart or a change to the rule.
   */
  readonly cache: {
    get(key: string): TokenhostCacheRecord | undefined;
    set(key: string, value: string, options?: { ttl?: number; expires_at?: number }): TokenhostCacheWriteResult;
    delete(key: string): TokenhostCacheWriteResult;
  };
}

/**
 * An Actions-style rule (`exports.onExecuteCredentialsExchange`). Finishing without
 * `api.access.deny` issues the token: the scopes being granted plus the claims set. A
 * thrown error is read like a legacy rule's `cb(error)`.
 */
type TokenhostAction =
  | ((event: TokenhostEvent, api: TokenhostApi) => Promise<void>)
  | ((event: TokenhostEvent, api: TokenhostApi) => void);

/** What an Actions-style rule exports. */
interface TokenhostActionExports {
  onExecuteCredentialsExchange?: TokenhostAction;
  [name: string]: unknown;
}

declare var module: { exports: TokenhostRule | TokenhostActionExports };
declare var exports: TokenhostActionExports;

/** 400 `invalid_scope`. */
declare class InvalidScopeError extends Error {
  constructor(message?: string);
}
/** 400 `invalid_request`. */
declare class InvalidRequestError extends Error {
  constructor(message?: string);
}
/** 400 `unauthorized_client`. */
declare class UnauthorizedClientError extends Error {
  constructor(message?: string);
}
/** 500 `server_error`, with your message as the description. */
declare class ServerError extends Error {
  constructor(message?: string);
}

/** Goes to the rule's logs (capped per execution), never to stdout. */
declare var console: {
  log(...values: unknown[]): void;
  info(...values: unknown[]): void;
  debug(...values: unknown[]): void;
  warn(...values: unknown[]): void;
  error(...values: unknown[]): void;
};

/** Always throws: rules have no modules. */
declare function require(name: string): never;
