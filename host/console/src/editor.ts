// The rule editor: CodeMirror 6 with JavaScript highlighting, completion of the names
// guest-sdk/rule.d.ts declares, and lint diagnostics for compile errors.
import { basicSetup } from 'codemirror';
import { EditorView, keymap } from '@codemirror/view';
import { EditorState } from '@codemirror/state';
import { javascript, javascriptLanguage } from '@codemirror/lang-javascript';
import { CompletionContext, CompletionResult, Completion, snippetCompletion } from '@codemirror/autocomplete';
import { syntaxTree, indentUnit } from '@codemirror/language';
import { setDiagnostics, lintGutter, Diagnostic } from '@codemirror/lint';
import { indentWithTab } from '@codemirror/commands';
import dts, { Member } from 'virtual:rule-dts';

/** The types rule arguments have, by their usual names. */
const ROOTS: Record<string, string> = {
  client: 'TokenhostClient',
  context: 'TokenhostContext',
  event: 'TokenhostEvent',
  api: 'TokenhostApi',
};

const ARGUMENTS: Completion[] = [
  { label: 'client', type: 'variable', detail: 'TokenhostClient', info: 'The OAuth client asking for a token.' },
  { label: 'scope', type: 'variable', detail: 'string[]', info: 'The scopes being granted.' },
  { label: 'audience', type: 'variable', detail: 'string', info: 'The API identifier the token is for.' },
  { label: 'context', type: 'variable', detail: 'TokenhostContext', info: 'ip, userAgent, hostname, request, secrets, accessToken, clientAuthentication, dpop.' },
  { label: 'cb', type: 'function', detail: 'TokenhostCallback', info: 'cb(null, token) issues the token; cb(error) refuses it.' },
  { label: 'event', type: 'variable', detail: 'TokenhostEvent', info: 'Actions-style rule: the exchange being made.' },
  { label: 'api', type: 'variable', detail: 'TokenhostApi', info: 'Actions-style rule: accessToken, access, cache.' },
];

const SNIPPETS: Completion[] = [
  snippetCompletion(
    "/** @type {TokenhostRule} */\nmodule.exports = function (client, scope, audience, context, cb) {\n\tvar access_token = {};\n\taccess_token.scope = scope;\n\t${}\n\tcb(null, access_token);\n};",
    { label: 'rule', detail: 'legacy rule', type: 'keyword' },
  ),
  snippetCompletion(
    '/** @type {TokenhostAction} */\nexports.onExecuteCredentialsExchange = async (event, api) => {\n\t${}\n};',
    { label: 'action', detail: 'Actions-style rule', type: 'keyword' },
  ),
];

function memberCompletion(m: Member): Completion {
  const isMethod = m.type.startsWith('(');
  return {
    label: m.name,
    type: m.type === 'class' ? 'class' : isMethod || m.type.startsWith('function') ? 'method' : 'property',
    detail: m.type.length > 60 ? `${m.type.slice(0, 57)}...` : m.type,
    info: m.doc || undefined,
  };
}

function interfaceIn(type: string): string | null {
  for (const name of type.match(/Tokenhost\w+/g) || []) if (dts.interfaces[name]) return name;
  return null;
}

/** The members reachable by `path` (`['context', 'request']`), or null. */
function membersAt(path: string[]): Member[] | null {
  const [root, ...rest] = path;
  let members: Member[] | undefined;
  if (ROOTS[root]) members = dts.interfaces[ROOTS[root]];
  else {
    const global = dts.globals.find((g) => g.name === root);
    if (!global) return null;
    members = global.children || (interfaceIn(global.type) ? dts.interfaces[interfaceIn(global.type)!] : undefined);
  }
  for (const part of rest) {
    if (!members) return null;
    const next: Member | undefined = members.find((m) => m.name === part);
    if (!next) return null;
    const named = interfaceIn(next.type);
    members = next.children && next.children.length ? next.children : named ? dts.interfaces[named] : undefined;
  }
  return members || null;
}

const globalCompletions: Completion[] = [
  ...ARGUMENTS,
  ...dts.globals.map(memberCompletion),
  ...SNIPPETS,
];

export function ruleCompletions(ctx: CompletionContext): CompletionResult | null {
  const node = syntaxTree(ctx.state).resolveInner(ctx.pos, -1);
  if (/String|Comment|TemplateString/.test(node.name)) return null;
  const match = ctx.matchBefore(/(?:[\w$]+\.)*[\w$]*$/);
  if (!match) return null;
  const parts = match.text.split('.');
  const word = parts.pop() || '';
  if (parts.length === 0) {
    if (!word && !ctx.explicit) return null;
    return { from: ctx.pos - word.length, options: globalCompletions, validFor: /^[\w$]*$/ };
  }
  const members = membersAt(parts);
  if (!members) return null;
  return { from: ctx.pos - word.length, options: members.map(memberCompletion), validFor: /^[\w$]*$/ };
}

export interface RuleEditor {
  view: EditorView;
  get(): string;
  set(text: string): void;
  /** Marks a compile error (1-based line and column) as a lint diagnostic. */
  markError(line: number, column: number, message: string): void;
  clearErrors(): void;
}

/**
 * The console's look for the editor. It lives in the editor's shadow root, with
 * CodeMirror's own styles: there they go in a constructed stylesheet
 * (adoptedStyleSheets), where in the document they would need an inline <style>, which
 * the console's Content-Security-Policy (style-src 'self') does not allow.
 */
const consoleTheme = EditorView.theme({
  '&': { height: '22rem', fontSize: '0.88rem', backgroundColor: '#fff' },
  '&.cm-focused': { outline: '2px solid #2f5bd3', outlineOffset: '-1px' },
  '.cm-scroller': { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace' },
  '.cm-gutters': { backgroundColor: '#f4f6f9', borderRight: '1px solid #dde1e8', color: '#7a8394' },
  '.cm-tooltip.cm-tooltip-lint, .cm-tooltip-autocomplete, .cm-completionInfo': { fontSize: '0.85rem' },
  // The lint extension draws these with data: URL images, which img-src 'self' refuses.
  '.cm-lintRange-error': {
    backgroundImage: 'none',
    textDecoration: 'underline wavy #e5383b',
    textDecorationSkipInk: 'none',
    textUnderlineOffset: '3px',
  },
  '.cm-lint-marker-error': {
    content: 'normal',
    display: 'inline-block',
    width: '0.75em',
    height: '0.75em',
    margin: '0.2em 0.1em 0',
    borderRadius: '50%',
    backgroundColor: '#e5383b',
  },
  '@media (max-width: 900px)': { '&': { height: '16rem' } },
});

export function createEditor(host: HTMLElement, doc: string, onChange: () => void): RuleEditor {
  const shadow = host.attachShadow({ mode: 'open' });
  const view = new EditorView({
    parent: shadow,
    root: shadow,
    state: EditorState.create({
      doc,
      extensions: [
        basicSetup,
        consoleTheme,
        keymap.of([indentWithTab]),
        indentUnit.of('  '),
        EditorState.tabSize.of(2),
        javascript(),
        javascriptLanguage.data.of({ autocomplete: ruleCompletions }),
        lintGutter(),
        EditorView.contentAttributes.of({ 'aria-label': 'Rule script' }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) onChange();
        }),
      ],
    }),
  });
  return {
    view,
    get: () => view.state.doc.toString(),
    set(text: string) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    markError(line: number, column: number, message: string) {
      const doc = view.state.doc;
      const l = doc.line(Math.min(Math.max(1, line), doc.lines));
      // A column past the line's end (the compiler's columns are not always exact)
      // marks the whole line.
      const inside = column >= 1 && l.from + column - 1 < l.to;
      const from = inside ? l.from + column - 1 : l.from;
      const to = inside ? from + 1 : l.to;
      const diagnostic: Diagnostic = { from, to, severity: 'error', message, source: 'compile' };
      view.dispatch(setDiagnostics(view.state, [diagnostic]));
      view.dispatch({ effects: EditorView.scrollIntoView(from, { y: 'center' }) });
    },
    clearErrors() {
      view.dispatch(setDiagnostics(view.state, []));
    },
  };
}
