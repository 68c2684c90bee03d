import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { describeFsError } from '../data/node-fs-errors.js';
import { LlamatrainError } from '../core/errors.js';

// Typed command-line options: a schema per command, `--key=value` or `--key value` overrides on top of an optional
// JSON config file (`--config file.json`), with type checks and helpful errors (nanoGPT's configurator, typed).
// Node's `util.parseArgs` splits the command line into tokens (`--key=value`, `--key value`, positionals, `--`);
// the schema gives them their meaning: types, `--no-flag`, config files and did-you-mean suggestions.

export type OptType = 'int' | 'number' | 'string' | 'boolean' | readonly string[];

export interface OptSpec<T = unknown> {
  type: OptType;
  default: T;
  help: string;
  /** Numbers: the smallest value allowed (itself excluded with `minExclusive`). Shown in --help, checked on every layer. */
  min?: number;
  minExclusive?: boolean;
  /** Numbers: the largest value allowed (itself excluded with `maxExclusive`). */
  max?: number;
  maxExclusive?: boolean;
}

export type Schema = Record<string, OptSpec>;
export type Values<S extends Schema> = { [K in keyof S]: S[K]['default'] };

export class UsageError extends LlamatrainError {}

/** camelCase → kebab-case: the spelling of an option on the command line (`seqLen` → `seq-len`). */
const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
/** kebab-case or snake_case → camelCase: the key of an option in a schema. */
const camel = (k: string): string => k.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
/** A schema key as a command-line flag, for messages: `seqLen` → `--seq-len`. */
export const flag = (key: string): string => `--${kebab(key)}`;

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const BOOLEAN_WORDS = new Map([['true', true], ['1', true], ['yes', true], ['false', false], ['0', false], ['no', false]]);

function typeName(t: OptType): string {
  return Array.isArray(t) ? `one of ${t.join(', ')}` : t === 'int' ? 'an integer' : t === 'number' ? 'a number' : t === 'boolean' ? 'true or false' : 'a string';
}

/** A type as written in --help: `int`, `wasm|ref`. */
const typeLabel = (t: OptType): string => (Array.isArray(t) ? t.join('|') : (t as string));

/** The range a spec declares, as written in --help and errors: `≥ 0`, `> 0`, `in (0, 1]`; '' when none. */
export function rangeText(spec: Pick<OptSpec, 'min' | 'minExclusive' | 'max' | 'maxExclusive'>): string {
  const { min, max } = spec;
  if (min !== undefined && max !== undefined) return `in ${spec.minExclusive ? '(' : '['}${min}, ${max}${spec.maxExclusive ? ')' : ']'}`;
  if (min !== undefined) return `${spec.minExclusive ? '>' : '≥'} ${min}`;
  if (max !== undefined) return `${spec.maxExclusive ? '<' : '≤'} ${max}`;
  return '';
}

/** Whether a number lies in the spec's range. */
export function inRange(spec: OptSpec, v: number): boolean {
  return (spec.min === undefined || (spec.minExclusive ? v > spec.min : v >= spec.min)) &&
    (spec.max === undefined || (spec.maxExclusive ? v < spec.max : v <= spec.max));
}

/** Converts and checks one value against its spec (type, then range); `where` names the option in errors. */
export function coerceSpec(spec: OptSpec, raw: unknown, where: string): unknown {
  const v = coerce(spec.type, raw, where);
  if (typeof v !== 'number') return v;
  if (spec.type === 'int' && !Number.isSafeInteger(v)) {
    throw new UsageError(`${where}: ${JSON.stringify(raw)} is too large for an integer option (at most ${Number.MAX_SAFE_INTEGER}${spec.max !== undefined ? `; this one allows ${rangeText(spec)}` : ''})`);
  }
  if (!inRange(spec, v)) throw new UsageError(`${where}: must be ${rangeText(spec)}, got ${typeof raw === 'string' ? raw : JSON.stringify(raw)} — ${spec.help}`);
  return v;
}

/** Converts and checks one value's type; `where` names the option in errors. */
export function coerce(t: OptType, raw: unknown, where: string): unknown {
  const fail = (): never => { throw new UsageError(`${where}: expected ${typeName(t)}, got ${JSON.stringify(raw)}`); };
  if (Array.isArray(t)) { if (typeof raw !== 'string' || !t.includes(raw)) fail(); return raw; }
  switch (t) {
    case 'string': if (typeof raw !== 'string') fail(); return raw;
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string' && BOOLEAN_WORDS.has(raw)) return BOOLEAN_WORDS.get(raw);
      return fail();
    case 'int':
    case 'number': {
      const v = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (v === Infinity || v === -Infinity) throw new UsageError(`${where}: ${JSON.stringify(raw)} is beyond the range of numbers (expected ${typeName(t)})`);
      // Number() also reads 0x10, 0b11, 0o7 and '  5 ': a typo'd or pasted value would run as something else
      if (typeof raw === 'string' && Number.isFinite(v) && !DECIMAL.test(raw)) {
        throw new UsageError(`${where}: expected ${typeName(t)} written in decimal (like 16, 0.5 or 3e-4), got ${JSON.stringify(raw)}`);
      }
      if (!Number.isFinite(v) || (t === 'int' && !Number.isInteger(v))) fail();
      return v === 0 ? 0 : v; // -0 is 0
    }
  }
  return fail();
}

function editDistance(a: string, b: string): number {
  const m = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) m[0]![j] = j;
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) {
    m[i]![j] = Math.min(m[i - 1]![j]! + 1, m[i]![j - 1]! + 1, m[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return m[a.length]![b.length]!;
}

/**
 * The candidate a mistyped name most likely meant: the nearest within two edits, else the only candidate it is
 * the start of (`--validation` → `--validation-fraction`). Compared in kebab-case, so `seqlen` finds `seq-len`.
 */
function closest(name: string, candidates: readonly string[]): string | null {
  const norm = (s: string) => kebab(camel(s)).toLowerCase();
  const n = norm(name);
  let best: string | null = null, bd = 3;
  for (const c of candidates) { const d = editDistance(n, norm(c)); if (d < bd) { bd = d; best = c; } }
  if (best === null && n.length >= 3) {
    const starts = candidates.filter((c) => norm(c).startsWith(n));
    if (starts.length === 1) best = starts[0]!;
  }
  return best;
}

/** Option values from somewhere other than the command line (a config file, a run's saved options). */
export interface ValueLayer {
  values: Record<string, unknown>;
  /** Names the source in errors, e.g. `--config run.json`. */
  from: string;
}

export interface ParseSettings {
  /** Whether the command takes positional arguments; without it a stray argument is an error. */
  allowPositionals?: boolean;
  /** Values beneath any `--config` file and the command line, e.g. a resumed run's saved options. */
  base?: ValueLayer;
  /**
   * The option that one positional argument gives (`train my.jsonl` is `train --data=my.jsonl`). A second positional
   * argument, or the option given both ways, is an error.
   */
  positionalKey?: string;
}

export interface Parsed<S extends Schema> { values: Values<S>; positional: string[] }

/** Reads `--config file.json`: a JSON object of option values. */
function readConfigFile(path: string | undefined, inline: boolean | undefined): ValueLayer {
  if (!path || (!inline && path.startsWith('--'))) throw new UsageError('--config: missing file name (--config file.json)');
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw new UsageError(`--config: ${describeFsError(path, e, 'reading the config file').message}`); }
  let values: unknown;
  try { values = JSON.parse(text); } catch (e) { throw new UsageError(`--config ${path}: not valid JSON (${(e as Error).message})`); }
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    throw new UsageError(`--config ${path}: expected a JSON object of option values, e.g. {"steps": 100, "seq-len": 64}`);
  }
  return { values: values as Record<string, unknown>, from: `--config ${path}` };
}

/**
 * Parses a command line against the schema: defaults, then `settings.base`, then `--config` files (in order),
 * then the flags, each overriding the one before. Keys may be camelCase, kebab-case or snake_case; booleans take
 * `--tie`, `--no-tie`, `--tie=false` or `--tie false`; `--` ends the options (later arguments are positional).
 */
export function parseCommandLine<S extends Schema>(schema: S, argv: string[], settings: ParseSettings = {}): Parsed<S> {
  const keys = Object.keys(schema);
  const has = (key: string) => Object.hasOwn(schema, key);
  const isBool = (key: string) => has(key) && schema[key]!.type === 'boolean';
  // Every spelling of every key, so that parseArgs knows which flags take the next argument as their value.
  const spellings: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' } };
  for (const k of keys) for (const s of [k, kebab(k), snake(k)]) spellings[s] = { type: isBool(k) ? 'boolean' : 'string' };
  const { tokens } = parseArgs({ args: argv, options: spellings, strict: false, allowPositionals: true, tokens: true });

  const values: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(schema)) values[k] = spec.default;
  const flagNames = [...keys.map(kebab), ...keys.filter(isBool).map((k) => `no-${kebab(k)}`)];

  const applyLayer = ({ values: given, from }: ValueLayer) => {
    // Every unknown key at once (a config file is edited as a whole), each with a suggestion in its own spelling.
    const unknown = Object.keys(given).filter((name) => !has(camel(name))).map((name) => {
      const style = name.includes('_') ? snake : name.includes('-') ? kebab : (k: string) => k;
      const near = closest(name, keys);
      return `"${name}"${near ? ` (did you mean "${style(near)}"?)` : ''}`;
    });
    if (unknown.length > 0) throw new UsageError(`${from}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; see --help for the options`);
    for (const [name, raw] of Object.entries(given)) values[camel(name)] = coerceSpec(schema[camel(name)]!, raw, `${from}: "${name}"`);
  };
  if (settings.base) applyLayer(settings.base);
  for (const t of tokens) if (t.kind === 'option' && t.name === 'config') applyLayer(readConfigFile(t.value, t.inlineValue));

  const positional: string[] = [];
  const onCommandLine = new Set<string>();
  const asKey = settings.positionalKey;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind === 'option-terminator') continue;
    if (t.kind === 'positional') {
      if (asKey !== undefined && positional.length > 0) {
        throw new UsageError(`unexpected argument ${JSON.stringify(t.value)}: this command takes one positional argument, the ${flag(asKey)} value ` +
          `(${JSON.stringify(positional[0])} already gives it); write other values as --key=value; see --help`);
      }
      if (!settings.allowPositionals && asKey === undefined) {
        throw new UsageError(`unexpected argument ${JSON.stringify(t.value)}: this command takes only options, written --key=value; see --help`);
      }
      positional.push(t.value);
      continue;
    }
    if (t.name === 'config') continue; // applied above, beneath every flag
    if (!t.rawName.startsWith('--')) {
      throw new UsageError(`${t.rawName}: unknown option; options are long (--key=value)` +
        (settings.allowPositionals ? ", and an argument that starts with '-' goes after --" : '') + '; see --help');
    }
    let key = camel(t.name);
    let raw: unknown = t.value;
    const unNegated = /^no[A-Z]/.test(key) ? key[2]!.toLowerCase() + key.slice(3) : '';
    if (!has(key) && has(unNegated) && !isBool(unNegated)) {
      throw new UsageError(`${t.rawName}: ${flag(unNegated)} is not an on/off option; give it a value (${flag(unNegated)}=<${typeLabel(schema[unNegated]!.type)}>)`);
    }
    if (!has(key) && isBool(unNegated)) {
      key = unNegated;
      if (t.value !== undefined) throw new UsageError(`${t.rawName}=${t.value}: --no-${kebab(key)} takes no value; write ${flag(key)}=${t.value} instead`);
      raw = false;
    } else if (!has(key)) {
      const near = closest(t.name, flagNames);
      throw new UsageError(`${t.rawName}: unknown option${near ? ` (did you mean --${near}?)` : ''}; see --help`);
    } else if (isBool(key)) {
      const next = tokens[i + 1];
      if (t.value !== undefined) raw = t.value;
      else if (next?.kind === 'positional' && BOOLEAN_WORDS.has(next.value)) { raw = next.value; i++; } // `--tie false`
      else raw = true;
    } else if (t.value === undefined || (!t.inlineValue && t.value.startsWith('--'))) {
      // `--steps` at the end, or `--steps --lr=1`: parseArgs took the next flag as the value.
      throw new UsageError(`${flag(key)}: missing value (expected ${typeName(schema[key]!.type)})` +
        (t.value !== undefined ? ` before ${t.value}; a value that starts with '--' is written ${flag(key)}=<value>` : ''));
    }
    values[key] = coerceSpec(schema[key]!, raw, flag(key));
    onCommandLine.add(key);
  }
  if (asKey !== undefined && positional.length > 0) {
    if (onCommandLine.has(asKey)) {
      throw new UsageError(`${JSON.stringify(positional[0])} and ${flag(asKey)}=${String(values[asKey])} both give ${flag(asKey)}; give it once`);
    }
    values[asKey] = coerceSpec(schema[asKey]!, positional[0], `${flag(asKey)} (the positional argument)`);
    return { values: values as Values<S>, positional: [] };
  }
  return { values: values as Values<S>, positional };
}

/**
 * A command's options as one declaration: its schema, what a positional argument means, and the checks that span
 * several options. `parseAndCheck` applies all of it, so every option is validated before a command does any work.
 */
export interface CommandOptions<S extends Schema = Schema> {
  /** As typed after `llamatrain`: 'train', 'tokenizer train'. */
  name: string;
  schema: S;
  /** The option a single positional argument gives (`train my.jsonl` = `train --data=my.jsonl`). */
  positional?: keyof S & string;
  /** Positional arguments the command reads itself (generate's prompt, tokenizer encode's text). */
  freePositionals?: boolean;
  /** Checks across options (`--kv-heads` must divide `--heads`); throws UsageError. No file access, no work. */
  check?(o: Values<S>): void; // a method: a command of a given schema is then also a CommandOptions<Schema>
}

/** Parses and checks a command line: types and ranges of every option (every layer), then the command's own checks. */
export function parseAndCheck<S extends Schema>(cmd: CommandOptions<S>, argv: string[], base?: ValueLayer): Parsed<S> {
  const parsed = parseCommandLine(cmd.schema, argv, { allowPositionals: cmd.freePositionals, positionalKey: cmd.positional, base });
  cmd.check?.(parsed.values);
  return parsed;
}

/** parseCommandLine with `fileValues` as the layer beneath the flags (as if read from a config file). */
export function parseOptions<S extends Schema>(schema: S, argv: string[], fileValues: Record<string, unknown> = {},
  settings: Omit<ParseSettings, 'base'> = {}): Parsed<S> {
  return parseCommandLine(schema, argv, { ...settings, base: { values: fileValues, from: 'config file' } });
}

/** Whether the arguments ask for help (`--help` or `-h` before any `--`, after which arguments are positional). */
export function wantsHelp(argv: string[]): boolean {
  const end = argv.indexOf('--');
  const options = end >= 0 ? argv.slice(0, end) : argv;
  return options.includes('--help') || options.includes('-h');
}

/** `--help` text: one entry per option, with its type and default. */
export function helpText(command: string, summary: string, schema: Schema, usage?: string): string {
  const rows = Object.entries(schema).map(([k, s]) => {
    const def = s.default === '' || s.default === null ? '' : ` (default: ${JSON.stringify(s.default)})`;
    const range = rangeText(s);
    const form = s.type === 'boolean' ? `--[no-]${kebab(k)}` : `${flag(k)}=<${typeLabel(s.type)}${range ? ` ${range}` : ''}>`;
    return `  ${form}\n      ${s.help}${def}`;
  });
  const config = '  --config=<file.json>\n      a JSON object of option values (e.g. {"steps": 100, "seq-len": 64}); flags given on the command line override it';
  return `${summary}\n\nUsage: ${usage ?? `llamatrain ${command} [--config file.json] [--key=value ...]`}\n\nOptions:\n${rows.join('\n')}\n${config}\n`;
}

/**
 * Refuses options that shape a new model when the model comes from --from and they disagree with its config.json
 * (which decides the shape): such a value would be silently ignored otherwise. A value left at its default, or
 * equal to the model's, is fine. `modelDir` is --from's resolved directory.
 */
export function refuseShapeWithFrom(schema: Schema, o: Record<string, unknown>, keys: readonly string[], modelDir: string): void {
  let cfg: Record<string, unknown>;
  try { cfg = JSON.parse(readFileSync(`${modelDir}/config.json`, 'utf8')) as Record<string, unknown>; } catch { return; } // loading reports it
  if (cfg === null || typeof cfg !== 'object') return;
  const model: Record<string, unknown> = {
    dim: cfg.hidden_size, layers: cfg.num_hidden_layers, heads: cfg.num_attention_heads,
    kvHeads: cfg.num_key_value_heads ?? cfg.num_attention_heads, ffn: cfg.intermediate_size, tie: cfg.tie_word_embeddings ?? false,
  };
  const given = keys.filter((k) => o[k] !== schema[k]!.default && o[k] !== model[k]);
  if (given.length === 0) return;
  throw new UsageError(`${given.map((k) => `${flag(k)}=${String(o[k])}`).join(', ')} with --from: the model's shape comes from --from's config.json ` +
    `(${given.map((k) => `${kebab(k)} ${String(model[k])}`).join(', ')}), so ${given.length > 1 ? 'these options shape' : 'this option shapes'} only a new model; ` +
    `drop ${given.length > 1 ? 'them' : 'it'} (or drop --from to train a new model)`);
}
