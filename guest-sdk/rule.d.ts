// Type declarations for tokenhost rules. List this file in a jsconfig.json (rules/ has
// one) and annotate the rule:
//
//   /** @type {TokenhostRule} */
//   module.exports = function (client, scope, audience, context, cb) { ... };
//
// Editors then complete `client`, `scope`, `audience`, `context` and `cb`, and
// `tsc -p rules/jsconfig.json` (`make lint` runs it) checks what you pass to `cb`.
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

declare var module: { exports: TokenhostRule | Record<string, unknown> };
declare var exports: Record<string, unknown>;

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
