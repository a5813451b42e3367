// A small DOM builder: text always goes in as text, never as HTML.
type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value as EventListener);
    } else if (key === 'class') {
      el.className = String(value);
    } else if (key === 'value' && 'value' in el) {
      (el as HTMLInputElement).value = String(value);
    } else if (key === 'checked' || key === 'disabled' || key === 'selected' || key === 'readOnly' || key === 'required') {
      (el as unknown as Record<string, boolean>)[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

let ids = 0;
export function uid(prefix: string): string {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled control: `<div class=field><label for=id>label</label>control hint</div>`. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLDivElement {
  if (!control.id) control.id = uid('f');
  const parts: Child[] = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hintId = uid('hint');
    control.setAttribute('aria-describedby', hintId);
    parts.push(h('span', { class: 'hint', id: hintId }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

export function notice(kind: 'error' | 'ok' | 'info', text: string): HTMLDivElement {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** A live region for a form's outcome. */
export function statusLine(): HTMLDivElement & { show(kind: 'error' | 'ok' | 'info', text: string): void; hide(): void } {
  const el = h('div', { class: 'notice', role: 'status', 'aria-live': 'polite' }) as HTMLDivElement & {
    show(kind: 'error' | 'ok' | 'info', text: string): void;
    hide(): void;
  };
  el.show = (kind, text) => {
    el.className = `notice ${kind}`;
    el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    el.textContent = text;
  };
  el.hide = () => {
    el.className = 'notice';
    el.textContent = '';
  };
  return el;
}

/** An in-page confirmation (no window.confirm): resolves true when confirmed. */
export function confirmDialog(message: string, confirmLabel = 'Confirm'): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h('dialog', { 'aria-label': 'Confirm' });
    const done = (ok: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(ok);
    };
    append(dialog, [
      h('p', {}, message),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'danger', onclick: () => done(true) }, confirmLabel),
        h('button', { type: 'button', onclick: () => done(false) }, 'Cancel'),
      ),
    ]);
    dialog.addEventListener('cancel', () => done(false));
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

export function fmtTime(unixSeconds: number | null | undefined): string {
  if (unixSeconds === null || unixSeconds === undefined) return '';
  const ms = unixSeconds > 1e11 ? unixSeconds : unixSeconds * 1000;
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function fmtDuration(us: number): string {
  if (us < 1000) return `${us} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 2 : 1)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
