// tokenhost console: a small single-page app over the management API (same origin).
import { h, append, clear, field, statusLine, confirmDialog, fmtTime, fmtDuration, json } from './dom';
import { api, ApiError, signIn, signOut, signedInAs, setSignedOutHandler, enc, bearer } from './api';
import { createEditor, RuleEditor } from './editor';
import { diffLines } from './diff';
import { openSse } from './sse';

type Cleanup = () => void;

interface ResourceServer {
  id: string;
  identifier: string;
  name: string;
  scopes: { value: string; description?: string }[];
  token_lifetime: number;
  signing_alg: string;
  allow_rule_added_scopes: boolean;
}
interface Client {
  client_id: string;
  name: string;
  client_metadata: Record<string, string>;
  app_type: string;
  token_endpoint_auth_method: string | null;
  client_secret?: string;
}
interface Grant {
  id: string;
  client_id: string;
  audience: string;
  scope: string[];
}
interface Rule {
  id: string;
  name: string;
  script?: string;
  kind: string;
  enabled: boolean;
  order: number;
  created_at: number;
  updated_at: number;
}
interface Version {
  number: number;
  current: boolean;
  kind: string;
  script?: string;
  created_at: number;
  created_by: string | null;
  deployed_from?: number;
}
interface LogLine {
  level: string;
  message: string;
}
interface LogEntry {
  id: string;
  time: string;
  request_id: string;
  rule_id: string;
  rule_name: string;
  client_id: string;
  audience: string;
  outcome: string;
  code?: string;
  cause?: string;
  fuel_used: number;
  duration_us: number;
  logs: LogLine[];
  truncated?: boolean;
}

const ALGS = ['RS256', 'ES256', 'EdDSA'];

const SEED_RULE = `/** @type {TokenhostRule} */
module.exports = function (client, scope, audience, context, cb) {
  var access_token = {};
  access_token['https://foo.com/claim'] = 'bar';
  access_token.scope = scope;
  access_token.scope.push('extra');
  cb(null, access_token);
};
`;

const SAMPLE_EVENT = {
  client: { id: 'm2m-client', name: 'Billing worker', tenant: 'default', metadata: {} },
  scope: ['test'],
  audience: 'https://api.example.com/',
  context: {
    ip: '203.0.113.7',
    userAgent: 'curl/8.5.0',
    hostname: 'auth.example.com',
    request: { method: 'POST', body: { grant_type: 'client_credentials', audience: 'https://api.example.com/' } },
  },
};

const root = document.getElementById('app') as HTMLElement;
let cleanup: Cleanup | null = null;
let signInMessage = '';

function errorText(e: unknown): string {
  if (e instanceof ApiError) {
    const where = e.line !== undefined && e.line !== null ? ` (line ${e.line}, column ${e.column})` : '';
    return `${e.message}${where}`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** Runs `task` with `button` disabled, reporting failure in `status`. */
async function busy<T>(button: HTMLButtonElement | null, status: ReturnType<typeof statusLine> | null, task: () => Promise<T>): Promise<T | undefined> {
  if (button) button.disabled = true;
  try {
    return await task();
  } catch (e) {
    if (status) status.show('error', errorText(e));
    else console.error(e);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Shell, routing, sign-in

setSignedOutHandler((reason) => {
  signInMessage = reason;
  render();
});

function render(): void {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  if (!signedInAs()) {
    renderSignIn();
    return;
  }
  const route = (location.hash || '#/apis').slice(2).split('/');
  const section = route[0] || 'apis';
  const links: [string, string][] = [
    ['apis', 'APIs'],
    ['clients', 'Clients'],
    ['rules', 'Rules'],
    ['logs', 'Logs'],
    ['keys', 'Keys'],
  ];
  const main = h('main', { id: 'main', tabindex: '-1' });
  clear(
    root,
    h(
      'header',
      { class: 'topbar' },
      h('div', { class: 'brand' }, 'tokenhost', h('small', {}, 'console')),
      h(
        'nav',
        { class: 'nav', 'aria-label': 'Sections' },
        links.map(([id, label]) =>
          h('a', { href: `#/${id}`, 'aria-current': id === section ? 'page' : undefined }, label),
        ),
      ),
      h(
        'div',
        { class: 'who' },
        h('span', {}, 'Signed in as ', h('span', { class: 'mono' }, signedInAs())),
        h('button', { type: 'button', class: 'small', onclick: () => signOut('') }, 'Sign out'),
      ),
    ),
    main,
  );
  const pages: Record<string, (main: HTMLElement, args: string[]) => Cleanup | void> = {
    apis: apisPage,
    clients: clientsPage,
    rules: rulesPage,
    logs: logsPage,
    keys: keysPage,
  };
  const page = pages[section] || apisPage;
  document.title = `${(links.find(([id]) => id === section) || links[0])[1]} · tokenhost console`;
  cleanup = page(main, route.slice(1).map(decodeURIComponent)) || null;
}

function renderSignIn(): void {
  document.title = 'Sign in · tokenhost console';
  const id = h('input', { type: 'text', name: 'client_id', autocomplete: 'username', required: true, spellcheck: 'false' });
  const secret = h('input', { type: 'password', name: 'client_secret', autocomplete: 'current-password', required: true });
  const status = statusLine();
  if (signInMessage) status.show('info', signInMessage);
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'panel', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'tokenhost console'),
    h('p', { class: 'hint' }, 'Sign in with a management client (its credentials for the management API). The token is kept in this page only: reloading signs you out.'),
    field('Client ID', id),
    field('Client secret', secret),
    status,
    h('div', { class: 'actions' }, button),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.hide();
    await busy(button, status, async () => {
      await signIn(id.value.trim(), secret.value);
      signInMessage = '';
      secret.value = '';
      if (!location.hash || location.hash === '#/') history.replaceState(null, '', '#/apis');
      render();
    });
  });
  clear(root, h('main', { class: 'signin' }, form));
  id.focus();
}

window.addEventListener('hashchange', render);

// ---------------------------------------------------------------------------------------
// APIs

function apisPage(main: HTMLElement): void {
  const status = statusLine();
  const list = h('div', { class: 'table-wrap' }, h('p', { class: 'empty' }, 'Loading...'));
  const formPanel = h('section', { class: 'panel', 'aria-labelledby': 'api-form-title' });
  append(main, [
    h('div', { class: 'page-head' }, h('h1', {}, 'APIs')),
    status,
    h('section', { class: 'panel', 'aria-label': 'All APIs' }, list),
    formPanel,
  ]);

  const load = async () => {
    const apis = await api<ResourceServer[]>('GET', '/resource-servers?per_page=100');
    if (!apis.length) {
      clear(list, h('p', { class: 'empty' }, 'No API yet: create one below.'));
      return;
    }
    clear(
      list,
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, 'APIs'),
        h('thead', {}, h('tr', {}, ['Name', 'Identifier (audience)', 'Scopes', 'Signing algorithm', 'Token lifetime', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          apis.map((a) =>
            h(
              'tr',
              {},
              h('td', {}, a.name),
              h('td', { class: 'mono' }, a.identifier),
              h('td', {}, a.scopes.length ? h('div', { class: 'tags' }, a.scopes.map((s) => h('span', { class: 'tag', title: s.description || '' }, s.value))) : h('span', { class: 'empty' }, 'none')),
              h('td', {}, a.signing_alg),
              h('td', {}, `${a.token_lifetime} s`),
              h(
                'td',
                {},
                h(
                  'div',
                  { class: 'actions' },
                  h('button', { type: 'button', class: 'small', 'aria-label': `Edit ${a.name}`, onclick: () => showForm(a) }, 'Edit'),
                  h(
                    'button',
                    {
                      type: 'button',
                      class: 'small danger',
                      'aria-label': `Delete ${a.name}`,
                      onclick: async (ev: Event) => {
                        if (!(await confirmDialog(`Delete the API ${a.name} (${a.identifier})? Its grants stop working.`, 'Delete'))) return;
                        await busy(ev.target as HTMLButtonElement, status, async () => {
                          await api('DELETE', `/resource-servers/${enc(a.id)}`);
                          status.show('ok', `Deleted ${a.name}.`);
                          await load();
                        });
                      },
                    },
                    'Delete',
                  ),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  };

  const showForm = (existing: ResourceServer | null) => {
    const identifier = h('input', { type: 'text', value: existing ? existing.identifier : '', readOnly: Boolean(existing), placeholder: 'https://api.example.com/', spellcheck: 'false' });
    const name = h('input', { type: 'text', value: existing ? existing.name : '' });
    const scopes = h('textarea', { rows: '4', spellcheck: 'false' });
    scopes.value = existing ? existing.scopes.map((s) => (s.description ? `${s.value} ${s.description}` : s.value)).join('\n') : '';
    const alg = h('select', {}, ALGS.map((a) => h('option', { value: a, selected: existing ? existing.signing_alg === a : a === 'RS256' }, a)));
    const lifetime = h('input', { type: 'number', min: '1', value: String(existing ? existing.token_lifetime : 86400) });
    const ruleScopes = h('input', { type: 'checkbox', checked: existing ? existing.allow_rule_added_scopes : true });
    const ruleScopesId = `rule-scopes-${Math.random().toString(36).slice(2)}`;
    ruleScopes.id = ruleScopesId;
    const formStatus = statusLine();
    const submit = h('button', { type: 'submit', class: 'primary' }, existing ? 'Save API' : 'Create API');
    const form = h(
      'form',
      {},
      h('h2', { id: 'api-form-title' }, existing ? `Edit ${existing.name}` : 'New API'),
      h(
        'div',
        { class: 'row' },
        field('Identifier', identifier, existing ? 'The audience: it cannot change.' : 'The audience tokens are issued for, such as https://api.example.com/'),
        field('Name', name),
      ),
      field('Scopes', scopes, 'One per line: the scope, then optionally a description (read:invoices Read invoices).'),
      h('div', { class: 'row' }, field('Signing algorithm', alg), field('Token lifetime (seconds)', lifetime)),
      h('label', { class: 'check', for: ruleScopesId }, ruleScopes, 'Rules may add scopes the client was not granted'),
      formStatus,
      h(
        'div',
        { class: 'actions' },
        submit,
        existing ? h('button', { type: 'button', onclick: () => showForm(null) }, 'Cancel') : null,
      ),
    );
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      formStatus.hide();
      await busy(submit, formStatus, async () => {
        const scopeDefs = scopes.value
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean)
          .map((l) => {
            const [value, ...rest] = l.split(/\s+/);
            return { value, description: rest.join(' ') };
          });
        const body: Record<string, unknown> = {
          name: name.value.trim() || undefined,
          scopes: scopeDefs,
          signing_alg: alg.value,
          token_lifetime: Number(lifetime.value),
          allow_rule_added_scopes: ruleScopes.checked,
        };
        if (existing) {
          await api('PATCH', `/resource-servers/${enc(existing.id)}`, body);
          status.show('ok', `Saved ${name.value || existing.name}.`);
        } else {
          const created = await api<ResourceServer>('POST', '/resource-servers', { identifier: identifier.value.trim(), ...body });
          status.show('ok', `Created the API ${created.name} (${created.identifier}).`);
        }
        showForm(null);
        await load();
      });
    });
    clear(formPanel, form);
    if (existing) name.focus();
  };

  showForm(null);
  load().catch((e) => status.show('error', errorText(e)));
}

// ---------------------------------------------------------------------------------------
// Clients and grants

function secretOnce(title: string, clientId: string, secret: string): HTMLElement {
  const idInput = h('input', { type: 'text', readOnly: true, value: clientId, class: 'mono' });
  const secretInput = h('input', { type: 'text', readOnly: true, value: secret, class: 'mono' });
  const copied = statusLine();
  return h(
    'div',
    { class: 'secret-once', role: 'region', 'aria-label': 'New client secret' },
    h('h3', {}, title),
    h('p', {}, 'The secret is shown this once: copy it now. tokenhost keeps only a hash of it.'),
    h('div', { class: 'row' }, field('New client ID', idInput), field('New client secret', secretInput)),
    h(
      'div',
      { class: 'actions' },
      h(
        'button',
        {
          type: 'button',
          class: 'small',
          onclick: async () => {
            secretInput.select();
            try {
              await navigator.clipboard.writeText(secret);
              copied.show('ok', 'Copied.');
            } catch {
              copied.show('info', 'Selected: press Ctrl+C (or ⌘C) to copy.');
            }
          },
        },
        'Copy secret',
      ),
      copied,
    ),
  );
}

function metadataText(meta: Record<string, string>): string {
  return json(meta || {});
}

function parseMetadata(text: string): Record<string, string> {
  const trimmed = text.trim();
  if (!trimmed) return {};
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (e) {
    throw new Error(`Metadata is not valid JSON: ${(e as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('Metadata must be a JSON object of strings');
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new Error(`Metadata values must be strings (${k} is not)`);
  }
  return value as Record<string, string>;
}

function clientsPage(main: HTMLElement, args: string[]): void {
  const selected = args[0] || null;
  const status = statusLine();
  const once = h('div', {});
  const list = h('div', { class: 'table-wrap' }, h('p', { class: 'empty' }, 'Loading...'));
  const detail = h('div', {});
  const name = h('input', { type: 'text', placeholder: 'billing-service' });
  const metadata = h('textarea', { rows: '3', spellcheck: 'false' });
  metadata.value = '{}';
  const createButton = h('button', { type: 'submit', class: 'primary' }, 'Create client');
  const createStatus = statusLine();
  const createForm = h(
    'form',
    { class: 'panel', 'aria-labelledby': 'new-client-title' },
    h('h2', { id: 'new-client-title' }, 'New client'),
    h('div', { class: 'row' }, field('Name', name), field('Metadata (JSON)', metadata, 'String values, such as {"tier": "gold"}; rules read them as client.metadata.')),
    createStatus,
    h('div', { class: 'actions' }, createButton),
  );
  append(main, [h('div', { class: 'page-head' }, h('h1', {}, 'Clients')), status, once, detail, createForm, h('section', { class: 'panel', 'aria-label': 'All clients' }, h('h2', {}, 'All clients'), list)]);

  createForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    createStatus.hide();
    await busy(createButton, createStatus, async () => {
      const client_metadata = parseMetadata(metadata.value);
      const created = await api<Client>('POST', '/clients', { name: name.value.trim(), client_metadata });
      name.value = '';
      metadata.value = '{}';
      clear(once, secretOnce(`Created ${created.name}`, created.client_id, created.client_secret || ''));
      await loadList();
      await showDetail(created.client_id);
      history.replaceState(null, '', `#/clients/${enc(created.client_id)}`);
    });
  });

  const loadList = async (current = selected) => {
    const clients = await api<Client[]>('GET', '/clients?per_page=100');
    clear(
      list,
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, 'Clients'),
        h('thead', {}, h('tr', {}, ['Name', 'Client ID', 'Metadata', 'Authentication', ''].map((t) => h('th', { scope: 'col', class: t === 'Authentication' ? 'wide-only' : undefined }, t)))),
        h(
          'tbody',
          {},
          clients.map((c) =>
            h(
              'tr',
              { class: c.client_id === current ? 'selected' : '' },
              h('td', {}, c.name),
              h('td', { class: 'mono' }, c.client_id),
              h('td', {}, Object.keys(c.client_metadata || {}).length ? h('div', { class: 'tags' }, Object.entries(c.client_metadata).map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`))) : h('span', { class: 'empty' }, 'none')),
              h('td', { class: 'wide-only' }, c.token_endpoint_auth_method || 'private_key_jwt only'),
              h('td', {}, h('a', { href: `#/clients/${enc(c.client_id)}`, 'aria-label': `Manage ${c.name}` }, 'Manage')),
            ),
          ),
        ),
      ),
    );
  };

  const showDetail = async (clientId: string) => {
    const [client, grants, apis] = await Promise.all([
      api<Client>('GET', `/clients/${enc(clientId)}`),
      api<Grant[]>('GET', `/client-grants?client_id=${enc(clientId)}&per_page=100`),
      api<ResourceServer[]>('GET', '/resource-servers?per_page=100'),
    ]);
    const detailStatus = statusLine();
    const meta = h('textarea', { rows: '4', spellcheck: 'false' });
    meta.value = metadataText(client.client_metadata);
    const saveMeta = h('button', { type: 'button' }, 'Save metadata');
    saveMeta.addEventListener('click', () =>
      busy(saveMeta, detailStatus, async () => {
        const next = parseMetadata(meta.value);
        const patch: Record<string, string | null> = { ...next };
        for (const key of Object.keys(client.client_metadata || {})) if (!(key in next)) patch[key] = null;
        const updated = await api<Client>('PATCH', `/clients/${enc(clientId)}`, { client_metadata: patch });
        client.client_metadata = updated.client_metadata;
        meta.value = metadataText(updated.client_metadata);
        detailStatus.show('ok', 'Metadata saved.');
        await loadList(clientId);
      }),
    );
    const rotate = h('button', { type: 'button' }, 'Rotate secret');
    rotate.addEventListener('click', async () => {
      if (!(await confirmDialog(`Rotate the secret of ${client.name}? The current secret stops working (after the server's grace period).`, 'Rotate'))) return;
      await busy(rotate, detailStatus, async () => {
        const rotated = await api<Client>('POST', `/clients/${enc(clientId)}/rotate-secret`);
        clear(once, secretOnce(`New secret for ${client.name}`, rotated.client_id, rotated.client_secret || ''));
        once.scrollIntoView({ block: 'nearest' });
      });
    });
    const del = h('button', { type: 'button', class: 'danger' }, 'Delete client');
    del.addEventListener('click', async () => {
      if (!(await confirmDialog(`Delete the client ${client.name} (${client.client_id}) and its grants?`, 'Delete'))) return;
      await busy(del, detailStatus, async () => {
        await api('DELETE', `/clients/${enc(clientId)}`);
        status.show('ok', `Deleted ${client.name}.`);
        clear(detail);
        clear(once);
        history.replaceState(null, '', '#/clients');
        await loadList(null);
      });
    });

    // Grants
    const grantRows = grants.map((g) => {
      const scopeInput = h('input', { type: 'text', value: g.scope.join(' '), spellcheck: 'false', 'aria-label': `Scopes granted on ${g.audience}` });
      const save = h('button', { type: 'button', class: 'small' }, 'Save scopes');
      save.addEventListener('click', () =>
        busy(save, detailStatus, async () => {
          await api('PATCH', `/client-grants/${enc(g.id)}`, { scope: scopeInput.value.split(/[\s,]+/).filter(Boolean) });
          detailStatus.show('ok', `Scopes on ${g.audience} saved.`);
        }),
      );
      const remove = h('button', { type: 'button', class: 'small danger', 'aria-label': `Revoke the grant on ${g.audience}` }, 'Revoke');
      remove.addEventListener('click', async () => {
        if (!(await confirmDialog(`Revoke ${client.name}'s grant on ${g.audience}?`, 'Revoke'))) return;
        await busy(remove, detailStatus, async () => {
          await api('DELETE', `/client-grants/${enc(g.id)}`);
          await showDetail(clientId);
        });
      });
      return h('tr', {}, h('td', { class: 'mono' }, g.audience), h('td', {}, scopeInput), h('td', {}, h('div', { class: 'actions' }, save, remove)));
    });
    const granted = new Set(grants.map((g) => g.audience));
    const available = apis.filter((a) => !granted.has(a.identifier));
    const apiSelect = h('select', {}, available.map((a) => h('option', { value: a.identifier }, `${a.name} (${a.identifier})`)));
    const scopeBox = h('fieldset', { class: 'scopes' });
    const renderScopes = () => {
      const chosen = available.find((a) => a.identifier === apiSelect.value);
      clear(
        scopeBox,
        h('legend', { class: 'label' }, 'Scopes'),
        chosen && chosen.scopes.length
          ? h(
              'div',
              { class: 'tags' },
              chosen.scopes.map((s) => {
                const box = h('input', { type: 'checkbox', value: s.value, checked: true });
                return h('label', { class: 'check' }, box, s.value);
              }),
            )
          : h('span', { class: 'empty' }, 'This API defines no scope.'),
      );
    };
    apiSelect.addEventListener('change', renderScopes);
    renderScopes();
    const addGrant = h('button', { type: 'submit' }, 'Add grant');
    const grantForm = h(
      'form',
      { 'aria-label': 'New grant' },
      available.length
        ? [h('div', { class: 'row' }, field('API', apiSelect)), scopeBox, h('div', { class: 'actions' }, addGrant)]
        : h('p', { class: 'empty' }, apis.length ? 'This client has a grant on every API.' : 'Create an API first to grant it.'),
    );
    grantForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      await busy(addGrant, detailStatus, async () => {
        const scope = Array.from(scopeBox.querySelectorAll<HTMLInputElement>('input[type=checkbox]'))
          .filter((b) => b.checked)
          .map((b) => b.value);
        await api('POST', '/client-grants', { client_id: clientId, audience: apiSelect.value, scope });
        await showDetail(clientId);
        const fresh = detail.querySelector('[role=status], [role=alert]') as HTMLElement & { show?: (k: string, t: string) => void };
        if (fresh && fresh.show) fresh.show('ok', `Granted ${scope.join(' ') || 'no scope'} on ${apiSelect.value}.`);
      });
    });

    clear(
      detail,
      h(
        'section',
        { class: 'panel', 'aria-labelledby': 'client-title' },
        h('h2', { id: 'client-title' }, client.name),
        h('p', {}, 'Client ID ', h('code', {}, client.client_id), ' · authentication ', h('code', {}, client.token_endpoint_auth_method || 'private_key_jwt')),
        detailStatus,
        h(
          'div',
          { class: 'grid-2' },
          h('div', {}, field('Metadata (JSON)', meta, 'Keys left out are removed.'), h('div', { class: 'actions' }, saveMeta, rotate, del)),
          h('div', {}, h('h3', {}, 'Add a grant'), grantForm),
        ),
        h('h3', { class: 'spaced' }, 'Grants'),
        grants.length
          ? h(
              'div',
              { class: 'table-wrap' },
              h('table', {}, h('thead', {}, h('tr', {}, ['API (audience)', 'Scopes', ''].map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, grantRows)),
            )
          : h('p', { class: 'empty' }, 'No grant: this client can get no token yet.'),
      ),
    );
  };

  loadList()
    .then(() => (selected ? showDetail(selected) : undefined))
    .catch((e) => status.show('error', errorText(e)));
}

// ---------------------------------------------------------------------------------------
// Rules

function rulesPage(main: HTMLElement, args: string[]): void {
  if (args[0]) {
    ruleEditorPage(main, args[0] === 'new' ? null : args[0]);
    return;
  }
  const status = statusLine();
  const list = h('div', { class: 'table-wrap' }, h('p', { class: 'empty' }, 'Loading...'));
  append(main, [
    h('div', { class: 'page-head' }, h('h1', {}, 'Rules'), h('button', { type: 'button', class: 'primary', onclick: () => (location.hash = '#/rules/new') }, 'New rule')),
    h('p', { class: 'hint' }, 'Enabled rules run in this order on every token request (never for the management API).'),
    status,
    h('section', { class: 'panel', 'aria-label': 'Rules in order' }, list),
  ]);

  let rules: Rule[] = [];
  const reorder = async (from: number, to: number) => {
    const next = rules.slice();
    const [moved] = next.splice(from, 1);
    next.splice(to, 0, moved);
    // Renumber 1..n, changing only the rules whose place changed.
    for (let i = 0; i < next.length; i++) {
      if (next[i].order !== i + 1) await api('PATCH', `/rules/${enc(next[i].id)}`, { order: i + 1 });
    }
    await load();
    status.show('ok', `Moved ${moved.name} to position ${to + 1}.`);
  };

  const load = async () => {
    rules = (await api<Rule[]>('GET', '/rules?per_page=100')).sort((a, b) => a.order - b.order || a.created_at - b.created_at);
    if (!rules.length) {
      clear(list, h('p', { class: 'empty' }, 'No rule yet: tokens are issued as granted. Use New rule to add one.'));
      return;
    }
    clear(
      list,
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, 'Rules in order'),
        h('thead', {}, h('tr', {}, ['#', 'Name', 'Enabled', 'Kind', 'Updated', 'Actions'].map((t) => h('th', { scope: 'col', class: t === 'Kind' || t === 'Updated' ? 'wide-only' : undefined }, t)))),
        h(
          'tbody',
          {},
          rules.map((r, i) => {
            const enabled = h('input', { type: 'checkbox', checked: r.enabled, 'aria-label': `Enabled: ${r.name}` });
            enabled.addEventListener('change', () =>
              busy(null, status, async () => {
                enabled.disabled = true;
                try {
                  const on = enabled.checked;
                  await api('PATCH', `/rules/${enc(r.id)}`, { enabled: on });
                  await load();
                  status.show('ok', `${r.name} ${on ? 'enabled' : 'disabled'}.`);
                } catch (e) {
                  enabled.checked = !enabled.checked;
                  throw e;
                } finally {
                  enabled.disabled = false;
                }
              }),
            );
            const up = h('button', { type: 'button', class: 'small', 'aria-label': `Move ${r.name} up`, disabled: i === 0 }, '↑');
            up.addEventListener('click', () => busy(up, status, () => reorder(i, i - 1)));
            const down = h('button', { type: 'button', class: 'small', 'aria-label': `Move ${r.name} down`, disabled: i === rules.length - 1 }, '↓');
            down.addEventListener('click', () => busy(down, status, () => reorder(i, i + 1)));
            const del = h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete ${r.name}` }, 'Delete');
            del.addEventListener('click', async () => {
              if (!(await confirmDialog(`Delete the rule ${r.name}, its versions and its secrets?`, 'Delete'))) return;
              await busy(del, status, async () => {
                await api('DELETE', `/rules/${enc(r.id)}`);
                status.show('ok', `Deleted ${r.name}.`);
                await load();
              });
            });
            return h(
              'tr',
              {},
              h('td', {}, String(i + 1)),
              h('td', {}, h('a', { href: `#/rules/${enc(r.id)}` }, r.name)),
              h('td', {}, h('label', { class: 'check' }, enabled, h('span', { class: `badge ${r.enabled ? 'on' : 'off'}`, 'aria-hidden': 'true' }, r.enabled ? 'on' : 'off'))),
              h('td', { class: 'wide-only' }, r.kind),
              h('td', { class: 'wide-only' }, fmtTime(r.updated_at)),
              h('td', {}, h('div', { class: 'actions' }, up, down, h('a', { href: `#/rules/${enc(r.id)}`, 'aria-label': `Edit ${r.name}`, class: 'small' }, 'Edit'), del)),
            );
          }),
        ),
      ),
    );
  };
  load().catch((e) => status.show('error', errorText(e)));
}

function renderTryResult(out: HTMLElement, report: any): void {
  const outcome = String(report.outcome);
  const items: [string, Node | string][] = [['Outcome', h('span', { class: `badge ${outcome}` }, outcome)]];
  if (report.token) {
    items.push(['Scope', report.token.scope && report.token.scope.length ? report.token.scope.join(' ') : '(none)']);
    items.push(['Claims', h('pre', { 'aria-label': 'Token claims' }, json(report.token.claims || {}))]);
  }
  if (report.denial) items.push(['Denial', `${report.denial.code}: ${report.denial.message}`]);
  if (report.failure) {
    const { kind, ...rest } = report.failure;
    items.push(['Failure', h('div', {}, h('code', {}, kind), Object.keys(rest).length ? h('pre', {}, json(rest)) : null)]);
  }
  items.push(['Fuel used', String(report.fuel_used)]);
  items.push(['Time', fmtDuration(Number(report.duration_us))]);
  items.push(['Version', report.version === null || report.version === undefined ? 'unsaved script' : `version ${report.version}`]);
  clear(
    out,
    h('h3', {}, 'Result'),
    h('dl', {}, items.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('h3', {}, 'Console output'),
    consoleLines(report.logs || [], report.truncated),
  );
}

function consoleLines(lines: LogLine[], truncated?: boolean): HTMLElement {
  if (!lines.length) return h('p', { class: 'empty' }, 'No console output.');
  return h(
    'ul',
    { class: 'console-lines', 'aria-label': 'Console output' },
    lines.map((l) => h('li', { class: l.level }, h('span', { class: 'lvl' }, l.level), l.message)),
    truncated ? h('li', { class: 'warn' }, '(output truncated)') : null,
  );
}

function ruleEditorPage(main: HTMLElement, ruleId: string | null): void {
  let saved: { name: string; script: string; enabled: boolean } | null = null;
  const status = statusLine();
  const title = h('h1', {}, ruleId ? 'Rule' : 'New rule');
  const name = h('input', { type: 'text', placeholder: 'my-rule', spellcheck: 'false' });
  const enabled = h('input', { type: 'checkbox', checked: true, id: 'rule-enabled' });
  const editorHost = h('div', { class: 'editor' });
  const saveButton = h('button', { type: 'button', class: 'primary' }, 'Save');
  const tryButton = h('button', { type: 'button' }, 'Try');
  const dirty = h('span', { class: 'hint', 'aria-live': 'polite' });
  const event = h('textarea', { rows: '14', spellcheck: 'false' });
  event.value = json(SAMPLE_EVENT);
  const tryStatus = statusLine();
  const tryOut = h('div', { class: 'result' });
  const extras = h('div', {});

  append(main, [
    h('div', { class: 'page-head' }, title, h('a', { href: '#/rules' }, '← All rules')),
    h(
      'div',
      { class: 'grid-2' },
      h(
        'section',
        { class: 'panel', 'aria-label': 'Rule' },
        h('div', { class: 'row' }, field('Name', name), h('div', { class: 'field inline' }, h('label', { class: 'check', for: 'rule-enabled' }, enabled, 'Enabled'))),
        h('div', { class: 'field' }, h('span', { class: 'label', id: 'rule-script-label' }, 'Rule script'), editorHost, h('span', { class: 'hint' }, 'Ctrl+Space completes client, context, event, api and their fields (guest-sdk/rule.d.ts). Tab indents: press Esc, then Tab, to leave the editor.')),
        status,
        h('div', { class: 'actions' }, saveButton, tryButton, dirty),
      ),
      h(
        'section',
        { class: 'panel', 'aria-labelledby': 'try-title' },
        h('h2', { id: 'try-title' }, 'Try'),
        h('p', { class: 'hint' }, "Runs the editor's script (saved or not) once against this event, with the rule's secrets; nothing is issued."),
        field('Sample event (JSON)', event),
        tryStatus,
        h('div', { 'aria-live': 'polite' }, tryOut),
      ),
    ),
    extras,
  ]);

  const updateDirty = () => {
    if (!saved) {
      dirty.textContent = 'Not saved yet';
      return;
    }
    const changed = saved.name !== name.value.trim() || saved.script !== editor.get() || saved.enabled !== enabled.checked;
    dirty.textContent = changed ? 'Unsaved changes' : 'Saved';
  };
  const editor: RuleEditor = createEditor(editorHost, ruleId ? '' : SEED_RULE, () => {
    editor.clearErrors();
    updateDirty();
  });
  name.addEventListener('input', updateDirty);
  enabled.addEventListener('change', updateDirty);

  const showCompileError = (e: unknown, into: ReturnType<typeof statusLine>): boolean => {
    if (e instanceof ApiError && typeof e.line === 'number') {
      const column = typeof e.column === 'number' ? e.column : 1;
      into.show('error', `Compile error at line ${e.line}, column ${column}: ${e.message}`);
      editor.markError(e.line, column, e.message);
      return true;
    }
    return false;
  };

  const adopt = (rule: Rule) => {
    ruleId = rule.id;
    saved = { name: rule.name, script: rule.script || '', enabled: rule.enabled };
    title.textContent = rule.name;
    document.title = `${rule.name} · Rules · tokenhost console`;
    updateDirty();
  };

  const load = async () => {
    if (!ruleId) {
      updateDirty();
      return;
    }
    const rule = await api<Rule>('GET', `/rules/${enc(ruleId)}`);
    name.value = rule.name;
    enabled.checked = rule.enabled;
    editor.set(rule.script || '// This rule is a WebAssembly component: its source is not kept here.');
    adopt(rule);
    await renderExtras();
  };

  /** Creates the rule (as given, or disabled as a draft for Try). */
  const create = async (asDraft: boolean): Promise<Rule> => {
    const ruleName = name.value.trim();
    if (!ruleName) throw new Error('Give the rule a name first.');
    const rule = await api<Rule>('POST', '/rules', { name: ruleName, script: editor.get(), enabled: asDraft ? false : enabled.checked });
    adopt(rule);
    history.replaceState(null, '', `#/rules/${enc(rule.id)}`);
    await renderExtras();
    return rule;
  };

  saveButton.addEventListener('click', async () => {
    status.hide();
    saveButton.disabled = true;
    try {
      if (!ruleId || !saved) {
        await create(false);
        status.show('ok', `Created ${saved!.name}: it applies from the next token request on.`);
        return;
      }
      const patch: Record<string, unknown> = {};
      if (name.value.trim() !== saved.name) patch.name = name.value.trim();
      if (editor.get() !== saved.script) patch.script = editor.get();
      if (enabled.checked !== saved.enabled) patch.enabled = enabled.checked;
      if (!Object.keys(patch).length) {
        status.show('info', 'Nothing to save.');
        return;
      }
      const rule = await api<Rule>('PATCH', `/rules/${enc(ruleId)}`, patch);
      adopt(rule);
      editor.clearErrors();
      status.show('ok', patch.script !== undefined ? `Saved ${rule.name}: the new version applies from the next token request on.` : `Saved ${rule.name}.`);
      await renderExtras();
    } catch (e) {
      if (!showCompileError(e, status)) status.show('error', errorText(e));
    } finally {
      saveButton.disabled = false;
    }
  });

  tryButton.addEventListener('click', async () => {
    tryStatus.hide();
    let sample: unknown;
    try {
      sample = event.value.trim() ? JSON.parse(event.value) : {};
    } catch (e) {
      tryStatus.show('error', `The sample event is not valid JSON: ${(e as Error).message}`);
      return;
    }
    tryButton.disabled = true;
    try {
      if (!ruleId) {
        const wanted = enabled.checked;
        // The test endpoint runs code in a rule's context (its secrets): a new rule is
        // saved first, disabled, so that trying it changes no token.
        await create(true);
        status.show('info', `Saved ${saved!.name} as a disabled draft so that it can be tried; Save to apply your changes and its Enabled setting.`);
        enabled.checked = wanted;
        updateDirty();
      }
      tryOut.replaceChildren(h('p', { class: 'empty' }, 'Running...'));
      // Unchanged code runs as the saved version (the report names it); edited code as is.
      const script = editor.get();
      const body: Record<string, unknown> = { event: sample };
      if (!saved || script !== saved.script) body.script = script;
      const report = await api('POST', `/rules/${enc(ruleId!)}/test`, body);
      editor.clearErrors();
      renderTryResult(tryOut, report);
    } catch (e) {
      tryOut.replaceChildren();
      if (!showCompileError(e, tryStatus)) tryStatus.show('error', errorText(e));
    } finally {
      tryButton.disabled = false;
    }
  });

  const renderExtras = async () => {
    if (!ruleId) return;
    const id = ruleId;
    const [versions, secrets] = await Promise.all([
      api<Version[]>('GET', `/rules/${enc(id)}/versions?per_page=100`),
      api<{ name: string; updated_at: number }[]>('GET', `/rules/${enc(id)}/secrets?per_page=100`),
    ]);
    versions.sort((a, b) => b.number - a.number);
    const vStatus = statusLine();
    const diffOut = h('div', {});
    const versionRows = versions.map((v) => {
      const diff = h('button', { type: 'button', class: 'small', 'aria-label': `Diff version ${v.number} against the current version`, disabled: v.current }, 'Diff');
      diff.addEventListener('click', () =>
        busy(diff, vStatus, async () => {
          const full = await api<Version>('GET', `/rules/${enc(id)}/versions/${v.number}`);
          const current = saved ? saved.script : '';
          const lines = diffLines(full.script || '', current);
          const changes = lines.filter((l) => l.kind !== ' ').length;
          clear(
            diffOut,
            h('h3', {}, `Version ${v.number} → current`),
            changes
              ? h('pre', { class: 'diff', 'aria-label': `Diff of version ${v.number} against the current version` }, lines.map((l) => h('span', { class: l.kind === '+' ? 'add' : l.kind === '-' ? 'del' : '' }, `${l.kind} ${l.text}`)))
              : h('p', { class: 'empty' }, 'Same code as the current version.'),
          );
        }),
      );
      const rollback = h('button', { type: 'button', class: 'small', 'aria-label': `Roll back to version ${v.number}`, disabled: v.current }, 'Roll back');
      rollback.addEventListener('click', async () => {
        if (!(await confirmDialog(`Deploy version ${v.number}'s code again as a new version? It applies from the next token request on.`, 'Roll back'))) return;
        await busy(rollback, vStatus, async () => {
          const deployed = await api<Version>('POST', `/rules/${enc(id)}/versions/${v.number}/deploy`);
          const rule = await api<Rule>('GET', `/rules/${enc(id)}`);
          editor.set(rule.script || deployed.script || '');
          adopt(rule);
          await renderExtras();
          status.show('ok', `Rolled back: version ${deployed.number} has version ${v.number}'s code.`);
        });
      });
      return h(
        'tr',
        {},
        h('td', {}, String(v.number)),
        h('td', {}, v.current ? h('span', { class: 'badge on' }, 'current') : v.deployed_from ? `from ${v.deployed_from}` : ''),
        h('td', {}, fmtTime(v.created_at)),
        h('td', { class: 'mono' }, v.created_by || ''),
        h('td', {}, h('div', { class: 'actions' }, diff, rollback)),
      );
    });

    const secretStatus = statusLine();
    const secretName = h('input', { type: 'text', spellcheck: 'false', placeholder: 'BILLING_KEY', pattern: '[A-Za-z0-9_]{1,128}' });
    const secretValue = h('input', { type: 'password', autocomplete: 'off' });
    const setSecret = h('button', { type: 'submit' }, 'Set secret');
    const secretForm = h('form', { 'aria-label': 'Set a secret' }, h('div', { class: 'row' }, field('Secret name', secretName), field('Secret value', secretValue, 'Write-only: never shown again.')), h('div', { class: 'actions' }, setSecret));
    secretForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      await busy(setSecret, secretStatus, async () => {
        const n = secretName.value.trim();
        await api('PATCH', `/rules/${enc(id)}/secrets`, { [n]: secretValue.value });
        secretValue.value = '';
        await renderExtras();
        const s = extras.querySelector<HTMLElement>('#secrets-status') as any;
        if (s && s.show) s.show('ok', `Secret ${n} set: context.secrets.${n}.`);
      });
    });
    secretStatus.id = 'secrets-status';
    const secretRows = secrets.map((s) => {
      const remove = h('button', { type: 'button', class: 'small danger', 'aria-label': `Remove the secret ${s.name}` }, 'Remove');
      remove.addEventListener('click', async () => {
        if (!(await confirmDialog(`Remove the secret ${s.name}?`, 'Remove'))) return;
        await busy(remove, secretStatus, async () => {
          await api('PATCH', `/rules/${enc(id)}/secrets`, { [s.name]: null });
          await renderExtras();
        });
      });
      return h('tr', {}, h('td', { class: 'mono' }, s.name), h('td', {}, fmtTime(s.updated_at)), h('td', {}, remove));
    });

    clear(
      extras,
      h(
        'div',
        { class: 'grid-2' },
        h(
          'section',
          { class: 'panel', 'aria-labelledby': 'versions-title' },
          h('h2', { id: 'versions-title' }, 'Versions'),
          vStatus,
          h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Version', '', 'Created', 'By', ''].map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, versionRows))),
          diffOut,
        ),
        h(
          'section',
          { class: 'panel', 'aria-labelledby': 'secrets-title' },
          h('h2', { id: 'secrets-title' }, 'Secrets'),
          h('p', { class: 'hint' }, 'The rule reads them as context.secrets.NAME (event.secrets in an Actions-style rule).'),
          secretStatus,
          secrets.length ? h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Updated', ''].map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, secretRows)) : h('p', { class: 'empty' }, 'No secret.'),
          secretForm,
        ),
      ),
    );
  };

  load().catch((e) => status.show('error', errorText(e)));
}

// ---------------------------------------------------------------------------------------
// Logs

function logsPage(main: HTMLElement): Cleanup {
  const status = statusLine();
  const ruleSelect = h('select', {}, h('option', { value: '' }, 'All rules'));
  const clientSelect = h('select', {}, h('option', { value: '' }, 'All clients'));
  const outcomeSelect = h('select', {}, ['', 'issued', 'denied', 'failed'].map((o) => h('option', { value: o }, o || 'Any outcome')));
  const dot = h('span', { class: 'live-dot', 'aria-hidden': 'true' });
  const liveText = h('span', {}, 'Connecting...');
  const liveButton = h('button', { type: 'button', class: 'small' }, 'Pause');
  const clearButton = h('button', { type: 'button', class: 'small' }, 'Clear');
  const entries = h('ul', { class: 'log-list', 'aria-label': 'Log entries', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  const empty = h('p', { class: 'empty' }, 'No execution yet. Entries appear here as token requests run rules.');
  const seen = new Set<string>();
  let stream: AbortController | null = null;
  let paused = false;
  let generation = 0;

  append(main, [
    h('div', { class: 'page-head' }, h('h1', {}, 'Logs'), h('div', { class: 'log-status', role: 'status' }, dot, liveText)),
    status,
    h(
      'section',
      { class: 'panel', 'aria-label': 'Filters' },
      h('div', { class: 'row' }, field('Rule', ruleSelect), field('Client', clientSelect), field('Outcome', outcomeSelect), h('div', { class: 'field inline' }, h('div', { class: 'actions' }, liveButton, clearButton))),
    ),
    h('section', { class: 'panel', 'aria-label': 'Rule executions' }, empty, entries),
  ]);

  const query = () => {
    const q = new URLSearchParams();
    if (ruleSelect.value) q.set('rule_id', ruleSelect.value);
    if (clientSelect.value) q.set('client_id', clientSelect.value);
    if (outcomeSelect.value) q.set('outcome', outcomeSelect.value);
    return q;
  };

  const entryView = (e: LogEntry) => {
    const outcome = e.outcome + (e.code ? ` (${e.code})` : '');
    return h(
      'li',
      { class: 'log-entry', 'data-id': e.id, 'aria-label': `${e.outcome} by ${e.rule_name} for ${e.client_id}` },
      h(
        'header',
        {},
        h('span', { class: 'time' }, e.time),
        h('span', { class: `badge ${e.outcome}` }, outcome),
        h('span', {}, 'Client ', h('code', {}, e.client_id)),
        h('span', {}, 'Rule ', h('strong', {}, e.rule_name)),
        h('span', {}, fmtDuration(e.duration_us)),
        h('span', { class: 'hint' }, `fuel ${e.fuel_used}`),
        h('span', { class: 'hint' }, e.audience),
      ),
      e.cause ? h('p', { class: 'notice error' }, e.cause) : null,
      e.logs && e.logs.length ? consoleLines(e.logs, e.truncated) : null,
    );
  };

  const add = (e: LogEntry, atTop: boolean) => {
    if (seen.has(e.id)) return;
    seen.add(e.id);
    empty.hidden = true;
    const view = entryView(e);
    if (atTop) entries.prepend(view);
    else entries.append(view);
    while (entries.childElementCount > 500) {
      const last = entries.lastElementChild as HTMLElement;
      seen.delete(last.dataset.id || '');
      last.remove();
    }
  };

  const setLive = (on: boolean, text: string) => {
    dot.className = `live-dot${on ? ' on' : ''}`;
    liveText.textContent = text;
  };

  const stop = () => {
    generation++;
    if (stream) stream.abort();
    stream = null;
  };

  const start = async () => {
    stop();
    const mine = generation;
    entries.replaceChildren();
    seen.clear();
    empty.hidden = false;
    setLive(false, 'Connecting...');
    let authorization: string;
    try {
      authorization = bearer();
    } catch {
      return;
    }
    // The stream first, so that nothing falls between the backlog and it.
    stream = openSse(`/api/v2/logs/stream?${query()}`, authorization, {
      onOpen: () => {
        if (mine === generation) setLive(true, 'Live');
      },
      onEvent: (data) => {
        if (mine !== generation) return;
        try {
          add(JSON.parse(data), true);
        } catch {
          /* not an entry */
        }
      },
      onComment: (text) => {
        if (mine !== generation || !text) return;
        if (text.startsWith('stream ended')) setLive(false, text);
        else status.show('info', text);
      },
      onClose: (reason) => {
        if (mine !== generation) return;
        setLive(false, `Disconnected: ${reason}`);
        liveButton.textContent = 'Resume';
        paused = true;
      },
    });
    try {
      const q = query();
      q.set('limit', '50');
      const backlog = await api<LogEntry[]>('GET', `/logs?${q}`);
      if (mine !== generation) return;
      for (const e of backlog) add(e, false);
    } catch (e) {
      status.show('error', errorText(e));
    }
  };

  liveButton.addEventListener('click', () => {
    if (paused) {
      paused = false;
      liveButton.textContent = 'Pause';
      start();
    } else {
      paused = true;
      stop();
      liveButton.textContent = 'Resume';
      setLive(false, 'Paused');
    }
  });
  clearButton.addEventListener('click', () => {
    entries.replaceChildren();
    empty.hidden = false;
  });
  for (const select of [ruleSelect, clientSelect, outcomeSelect]) {
    select.addEventListener('change', () => {
      paused = false;
      liveButton.textContent = 'Pause';
      start();
    });
  }

  Promise.all([api<Rule[]>('GET', '/rules?per_page=100'), api<Client[]>('GET', '/clients?per_page=100')])
    .then(([rules, clients]) => {
      append(ruleSelect, rules.sort((a, b) => a.order - b.order).map((r) => h('option', { value: r.id }, r.name)));
      append(clientSelect, clients.map((c) => h('option', { value: c.client_id }, `${c.name} (${c.client_id})`)));
    })
    .catch((e) => status.show('error', errorText(e)));
  start();
  return stop;
}

// ---------------------------------------------------------------------------------------
// Keys

function keysPage(main: HTMLElement): void {
  const status = statusLine();
  const list = h('div', { class: 'table-wrap' }, h('p', { class: 'empty' }, 'Loading...'));
  const jwks = h('pre', { 'aria-label': 'JWKS document' }, 'Loading...');
  const alg = h('select', {}, h('option', { value: '' }, 'All algorithms'), ALGS.map((a) => h('option', { value: a }, a)));
  const rotate = h('button', { type: 'button', class: 'primary' }, 'Rotate keys');
  append(main, [
    h('div', { class: 'page-head' }, h('h1', {}, 'Keys')),
    status,
    h(
      'div',
      { class: 'grid-2' },
      h('section', { class: 'panel', 'aria-labelledby': 'keys-title' }, h('h2', { id: 'keys-title' }, 'Signing keys'), list),
      h(
        'section',
        { class: 'panel', 'aria-labelledby': 'rotate-title' },
        h('h2', { id: 'rotate-title' }, 'Rotate'),
        h('p', { class: 'hint' }, 'The next key starts signing; the current one is retired but stays in the JWKS until the tokens it signed have expired.'),
        field('Algorithm', alg),
        h('div', { class: 'actions' }, rotate),
      ),
    ),
    h('section', { class: 'panel', 'aria-labelledby': 'jwks-title' }, h('h2', { id: 'jwks-title' }, 'JWKS'), h('p', {}, 'Published at ', h('a', { href: '/.well-known/jwks.json' }, '/.well-known/jwks.json'), ': what APIs verify tokens with.'), jwks),
  ]);

  const load = async () => {
    const [keys, doc] = await Promise.all([
      api<any[]>('GET', '/keys/signing?per_page=100'),
      fetch('/.well-known/jwks.json', { cache: 'no-store', credentials: 'omit' }).then((r) => r.json()),
    ]);
    jwks.textContent = json(doc);
    const order: Record<string, number> = { current: 0, next: 1, retired: 2 };
    keys.sort((a, b) => a.alg.localeCompare(b.alg) || (order[a.state] ?? 3) - (order[b.state] ?? 3) || b.created_at - a.created_at);
    clear(
      list,
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, 'Signing keys'),
        h('thead', {}, h('tr', {}, ['Key ID', 'Algorithm', 'State', 'Created', 'Retired'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          keys.map((k) =>
            h(
              'tr',
              {},
              h('td', { class: 'mono' }, k.kid),
              h('td', {}, k.alg),
              h('td', {}, h('span', { class: `badge ${k.state === 'current' ? 'on' : 'neutral'}` }, k.state)),
              h('td', {}, fmtTime(k.created_at)),
              h('td', {}, k.retired_at ? fmtTime(k.retired_at) : ''),
            ),
          ),
        ),
      ),
    );
  };

  rotate.addEventListener('click', async () => {
    const which = alg.value || 'every algorithm';
    if (!(await confirmDialog(`Rotate the signing keys of ${which}?`, 'Rotate'))) return;
    await busy(rotate, status, async () => {
      await api('POST', '/keys/signing/rotate', alg.value ? { alg: alg.value } : undefined);
      status.show('ok', `Rotated the keys of ${which}.`);
      await load();
    });
  });
  load().catch((e) => status.show('error', errorText(e)));
}

// ---------------------------------------------------------------------------------------

render();
