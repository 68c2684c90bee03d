import { readFileSync } from 'node:fs';

// Typed command-line options: a schema per command, `--key=value` or `--key value` overrides on top of an optional
// JSON config file (`--config file.json`), with type checks and helpful errors (nanoGPT's configurator, typed).

export type OptType = 'int' | 'number' | 'string' | 'boolean' | readonly string[];

export interface OptSpec<T = unknown> {
  type: OptType;
  default: T;
  help: string;
}

export type Schema = Record<string, OptSpec>;
export type Values<S extends Schema> = { [K in keyof S]: S[K]['default'] };

export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const camel = (k: string) => k.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase()); // kebab-case and snake_case

function typeName(t: OptType): string {
  return Array.isArray(t) ? `one of ${t.join(', ')}` : t === 'int' ? 'an integer' : t === 'number' ? 'a number' : t === 'boolean' ? 'true or false' : 'a string';
}

/** Converts and checks one value; `where` names the option in errors. */
export function coerce(t: OptType, raw: unknown, where: string): unknown {
  const fail = (): never => { throw new UsageError(`${where}: expected ${typeName(t)}, got ${JSON.stringify(raw)}`); };
  if (Array.isArray(t)) { if (typeof raw !== 'string' || !t.includes(raw)) fail(); return raw; }
  switch (t) {
    case 'string': if (typeof raw !== 'string') fail(); return raw;
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no') return false;
      return fail();
    case 'int':
    case 'number': {
      const v = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(v) || (t === 'int' && !Number.isInteger(v))) fail();
      return v;
    }
  }
  return fail();
}

function closest(name: string, keys: string[]): string | null {
  const d = (a: string, b: string) => {
    const m = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) m[0]![j] = j;
    for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) {
      m[i]![j] = Math.min(m[i - 1]![j]! + 1, m[i]![j - 1]! + 1, m[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    return m[a.length]![b.length]!;
  };
  let best: string | null = null, bd = 3;
  for (const k of keys) { const x = d(name, k); if (x < bd) { bd = x; best = k; } }
  return best;
}

/** Parses argv against the schema. Positional arguments are returned separately. */
export function parseOptions<S extends Schema>(schema: S, argv: string[], fileValues: Record<string, unknown> = {}):
  { values: Values<S>; positional: string[] } {
  const values: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(schema)) values[k] = spec.default;
  const keys = Object.keys(schema);
  const set = (key: string, raw: unknown, where: string) => {
    if (!(key in schema)) {
      const near = closest(key, keys);
      throw new UsageError(`${where}: unknown option${near ? ` (did you mean --${kebab(near)}?)` : ''}; see --help`);
    }
    values[key] = coerce(schema[key]!.type, raw, where);
  };
  for (const [k, v] of Object.entries(fileValues)) set(camel(k), v, `config file: "${k}"`);
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) { positional.push(a); continue; }
    const eq = a.indexOf('=');
    const key = camel(eq >= 0 ? a.slice(2, eq) : a.slice(2));
    let raw: unknown;
    if (eq >= 0) raw = a.slice(eq + 1);
    else if (schema[key]?.type === 'boolean' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) raw = true;
    else if (key.startsWith('no') && schema[camel(key.slice(2, 3).toLowerCase() + key.slice(3))]?.type === 'boolean') {
      set(camel(key.slice(2, 3).toLowerCase() + key.slice(3)), false, a); continue;
    } else {
      raw = argv[++i];
      if (raw === undefined) throw new UsageError(`${a}: missing value`);
    }
    set(key, raw, `--${kebab(key)}`);
  }
  return { values: values as Values<S>, positional };
}

/** parseOptions, after taking `--config file.json` (a JSON object of option values; argv overrides it). */
export function parseCommandLine<S extends Schema>(schema: S, argv: string[]): { values: Values<S>; positional: string[] } {
  const rest: string[] = [];
  let file: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a !== '--config' && !a.startsWith('--config=')) { rest.push(a); continue; }
    const path = a.startsWith('--config=') ? a.slice('--config='.length) : argv[++i];
    if (!path) throw new UsageError('--config: missing file name');
    let text: string;
    try { text = readFileSync(path, 'utf8'); } catch { throw new UsageError(`--config: cannot read '${path}'`); }
    try { file = JSON.parse(text) as Record<string, unknown>; } catch (e) { throw new UsageError(`--config ${path}: not valid JSON (${(e as Error).message})`); }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new UsageError(`--config ${path}: expected a JSON object of option values`);
  }
  return parseOptions(schema, rest, file);
}

export function helpText(command: string, summary: string, schema: Schema, usage?: string): string {
  const rows = Object.entries(schema).map(([k, s]) => {
    const def = s.default === '' || s.default === null ? '' : ` (default: ${JSON.stringify(s.default)})`;
    const type = Array.isArray(s.type) ? s.type.join('|') : s.type;
    return `  --${kebab(k)}=<${type}>\n      ${s.help}${def}`;
  });
  return `${summary}\n\nUsage: ${usage ?? `llamatrain ${command} [--config file.json] [--key=value ...]`}\n\nOptions:\n${rows.join('\n')}\n`;
}
