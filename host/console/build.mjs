// Builds the console into dist/ (index.html, app.js, app.css): deterministic, no hashes,
// no timestamps, so the committed bundle can be checked against its source.
//
//   npm ci && npm run build     # writes dist/
//   npm run check               # rebuilds in memory; exits 1 if dist/ differs from it
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const dtsPath = join(here, '..', '..', 'guest-sdk', 'rule.d.ts');
const check = process.argv.includes('--check');

/**
 * Reads guest-sdk/rule.d.ts into the names the editor completes:
 * {interfaces: {Name: [member]}, globals: [member]}, member = {name, type, doc, children?}.
 */
function parseDts(text) {
  const interfaces = {};
  const globals = [];
  const stack = []; // containers (arrays of members) or null for blocks we skip
  let doc = [];
  let inDoc = false;
  const memberRe = /^(?:readonly\s+)?([A-Za-z_$][\w$]*)(\?)?(\([^)]*\))?\s*:\s*(.*?)[;,]?$/;
  const inline = (type) => {
    const body = /^\{(.*)\}$/.exec(type.trim());
    if (!body) return undefined;
    return body[1]
      .split(';')
      .map((part) => memberRe.exec(part.trim()))
      .filter(Boolean)
      .map(([, name, , args, t]) => ({ name, type: (args ? `${args} => ` : '') + t.trim(), doc: '' }));
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (inDoc || line.startsWith('/**')) {
      inDoc = !line.includes('*/');
      const body = line.replace(/^\/\*\*/, '').replace(/\*\/$/, '').replace(/^\*\s?/, '').trim();
      if (body) doc.push(body);
      continue;
    }
    if (line.startsWith('//') || line === '') continue;
    const net = (line.match(/\{/g) || []).length - (line.match(/\}/g) || []).length;
    let opened = null;
    const top = stack.length ? stack[stack.length - 1] : undefined;
    let m;
    if (stack.length === 0 && (m = /^interface (\w+)/.exec(line))) {
      opened = interfaces[m[1]] = [];
    } else if (stack.length === 0 && (m = /^declare var (\w+):\s*(.*?);?$/.exec(line))) {
      const g = { name: m[1], type: m[2].replace(/\{$/, '').trim(), doc: doc.join(' ') };
      const children = inline(m[2]);
      if (children) g.children = children;
      if (net > 0) opened = g.children = [];
      globals.push(g);
    } else if (stack.length === 0 && (m = /^declare (class|function) (\w+)(.*)$/.exec(line))) {
      globals.push({ name: m[2], type: m[1] === 'class' ? 'class' : `function${m[3].replace(/;$/, '')}`, doc: doc.join(' ') });
    } else if (Array.isArray(top) && !line.startsWith('[') && (m = memberRe.exec(line))) {
      const [, name, , args, type] = m;
      const member = { name, type: ((args ? `${args} => ` : '') + type.replace(/\{$/, '')).trim(), doc: doc.join(' ') };
      const children = inline(type);
      if (children) member.children = children;
      if (net > 0) opened = member.children = [];
      top.push(member);
    }
    doc = [];
    if (net > 0) {
      stack.push(opened);
      for (let i = 1; i < net; i++) stack.push(null);
    } else {
      for (let i = 0; i < -net; i++) stack.pop();
    }
  }
  return { interfaces, globals };
}

const dtsPlugin = {
  name: 'rule-dts',
  setup(build) {
    build.onResolve({ filter: /^virtual:rule-dts$/ }, () => ({ path: dtsPath, namespace: 'rule-dts' }));
    build.onLoad({ filter: /.*/, namespace: 'rule-dts' }, () => ({
      contents: JSON.stringify(parseDts(readFileSync(dtsPath, 'utf8'))),
      loader: 'json',
    }));
  },
};

const common = {
  bundle: true,
  minify: true,
  write: false,
  legalComments: 'eof',
  charset: 'utf8',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  logLevel: 'warning',
  absWorkingDir: here,
};

async function build() {
  const js = await esbuild.build({
    ...common,
    entryPoints: ['src/main.ts'],
    format: 'iife',
    outfile: 'dist/app.js',
    plugins: [dtsPlugin],
  });
  const css = await esbuild.build({
    ...common,
    entryPoints: ['src/style.css'],
    outfile: 'dist/app.css',
  });
  return {
    'index.html': readFileSync(join(here, 'src', 'index.html')),
    'app.js': Buffer.from(js.outputFiles[0].contents),
    'app.css': Buffer.from(css.outputFiles[0].contents),
  };
}

const files = await build();
if (check) {
  const stale = Object.entries(files).filter(([name, bytes]) => {
    const path = join(dist, name);
    return !existsSync(path) || !readFileSync(path).equals(bytes);
  });
  if (stale.length) {
    console.error(`host/console/dist is out of date (${stale.map(([n]) => n).join(', ')}): run \`npm ci && npm run build\` in host/console and commit dist/`);
    process.exit(1);
  }
  console.log('host/console/dist matches its source');
} else {
  mkdirSync(dist, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) {
    writeFileSync(join(dist, name), bytes);
    console.log(`dist/${name} ${bytes.length} bytes`);
  }
}
