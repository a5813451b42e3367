// The management API client. The token lives in this module's memory only: never in
// localStorage, sessionStorage or a cookie. A reload signs out.

export class ApiError extends Error {
  status: number;
  code: string;
  line?: number;
  column?: number;
  constructor(status: number, message: string, code = '', line?: number, column?: number) {
    super(message);
    this.status = status;
    this.code = code;
    this.line = line;
    this.column = column;
  }
}

interface Session {
  token: string;
  clientId: string;
  audience: string;
  expiresAt: number;
}

let session: Session | null = null;
let onSignedOut: (reason: string) => void = () => {};

export function setSignedOutHandler(handler: (reason: string) => void): void {
  onSignedOut = handler;
}

export function signedInAs(): string | null {
  return session ? session.clientId : null;
}

export function bearer(): string {
  if (!session) throw new ApiError(401, 'Not signed in', 'not_signed_in');
  return `Bearer ${session.token}`;
}

export function signOut(reason = ''): void {
  session = null;
  onSignedOut(reason);
}

async function readJson(res: Response): Promise<any> {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The management API's audience: `<issuer>api/v2/`, the issuer from discovery. */
async function managementAudience(): Promise<string> {
  const res = await fetch('/.well-known/oauth-authorization-server', { cache: 'no-store', credentials: 'omit' });
  if (!res.ok) throw new ApiError(res.status, `Cannot read the server's metadata (HTTP ${res.status})`);
  const meta = await res.json();
  const issuer = String(meta.issuer || '').replace(/\/*$/, '/');
  return `${issuer}api/v2/`;
}

/** Gets a management token with the client credentials grant. */
export async function signIn(clientId: string, clientSecret: string): Promise<void> {
  const audience = await managementAudience();
  const res = await fetch('/oauth/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, audience }),
    credentials: 'omit',
    cache: 'no-store',
  });
  const body = await readJson(res);
  if (!res.ok || !body || typeof body.access_token !== 'string') {
    const code = body && body.error ? String(body.error) : '';
    const description = body && body.error_description ? String(body.error_description) : '';
    const text = [code, description].filter(Boolean).join(': ') || `HTTP ${res.status}`;
    throw new ApiError(res.status, text, code);
  }
  session = {
    token: body.access_token,
    clientId,
    audience,
    expiresAt: Date.now() + Number(body.expires_in || 0) * 1000,
  };
}

function errorFrom(status: number, body: any): ApiError {
  if (body && typeof body === 'object') {
    const message = body.message || body.error_description || body.error || `HTTP ${status}`;
    return new ApiError(status, String(message), String(body.errorCode || body.error || ''), body.line, body.column);
  }
  return new ApiError(status, typeof body === 'string' && body ? body : `HTTP ${status}`);
}

/** One management API call; `path` is under /api/v2. */
export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Authorization: bearer(), Accept: 'application/json' };
  const init: RequestInit = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`/api/v2${path}`, init);
  const parsed = await readJson(res);
  if (!res.ok) {
    const error = errorFrom(res.status, parsed);
    if (res.status === 401) signOut(`Signed out: ${error.message}`);
    throw error;
  }
  return parsed as T;
}

export function enc(part: string): string {
  return encodeURIComponent(part);
}
