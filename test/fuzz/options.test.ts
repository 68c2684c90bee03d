// Property-based fuzzing of every command's option parsing and validation (fast-check). Random command lines —
// known flags in every spelling, unknown and near-miss flags, `--no-` forms, bare flags, positional arguments, `--`,
// odd numbers ('NaN', 'Infinity', '1e309', '-0', '', hex, huge integers) — on top of random config-file and
// saved-run layers. Each case must either give options that satisfy every declared type and range, or throw our
// UsageError with a message that names what to change; never a TypeError/RangeError from inside, never a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { type CommandOptions, type OptSpec, type Schema, type ValueLayer, UsageError, parseAndCheck } from '../../src/cli/options.js';
import { trainCommand } from '../../src/cli/train.js';
import { chatCommand, sftCommand } from '../../src/cli/sft.js';
import { evalCommand, generateCommand, tokenizerDecodeCommand, tokenizerEncodeCommand, tokenizerTrainCommand } from '../../src/cli/commands.js';
import { playgroundSchema } from '../../src/cli/playground.js';

const playgroundCommand: CommandOptions<typeof playgroundSchema> = { name: 'playground', schema: playgroundSchema };
const COMMANDS = [trainCommand, sftCommand, evalCommand, generateCommand, chatCommand, tokenizerTrainCommand, tokenizerEncodeCommand,
  tokenizerDecodeCommand, playgroundCommand] as unknown as CommandOptions<Schema>[];

/** Each case's time limit: parsing a command line is microseconds; anything near this is a hang in the making. */
const CASE_MS = 250;

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

const ODD_NUMBERS = ['NaN', 'Infinity', '-Infinity', '1e309', '-1e309', '-0', '0', '', ' ', '0x10', '1e20', '-1e20', '9007199254740993',
  '4294967296', '1_000', ' 5', '5 ', '.5', '-.5', '1.', '+3', '1e-400', '2.5', '-1', '1', 'true', 'null', '--', '-', '=', '🙂'];

/** A value for an option: one of its valid values, a value at or past its bounds, or something odd. */
function valueFor(spec: OptSpec | undefined): fc.Arbitrary<string> {
  const odd = fc.oneof(fc.constantFrom(...ODD_NUMBERS), fc.string({ maxLength: 12 }), fc.double().map(String), fc.integer().map(String),
    fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }).map(String));
  if (!spec) return odd;
  const near: string[] = [];
  for (const b of [spec.min, spec.max]) if (b !== undefined) near.push(String(b), String(b - 1), String(b + 1), String(b - 1e-9), String(b + 1e-9));
  const valid = Array.isArray(spec.type) ? fc.constantFrom(...(spec.type as string[]))
    : spec.type === 'boolean' ? fc.constantFrom('true', 'false', 'yes', 'no', '1', '0')
      : spec.type === 'string' ? fc.string({ maxLength: 16 })
        : fc.double({ min: spec.min ?? -1e6, max: spec.max ?? 1e6, noNaN: true }).map((x) => String(spec.type === 'int' ? Math.round(x) : x));
  return fc.oneof(valid, near.length ? fc.constantFrom(...near) : valid, odd);
}

/** A flag name: a schema key in any spelling, a --no- form, a near miss, or a random or special name. */
function nameFor(schema: Schema): fc.Arbitrary<string> {
  const keys = Object.keys(schema);
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...keys).chain((k) => fc.constantFrom(kebab(k), snake(k), k, `no-${kebab(k)}`)) },
    { weight: 1, arbitrary: fc.constantFrom(...keys).map((k) => kebab(k).slice(0, -1)) }, // a typo
    { weight: 1, arbitrary: fc.constantFrom('config', 'constructor', '__proto__', 'toString', 'hasOwnProperty', 'help', 'version', 'no-', '', 'x') },
    { weight: 1, arbitrary: fc.string({ maxLength: 10 }) },
  );
}

/** One or two command-line arguments. */
function argFor(schema: Schema): fc.Arbitrary<string[]> {
  const withSpec = nameFor(schema).chain((name) => {
    const key = name.replace(/^no-/, '').replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
    return valueFor(schema[key]).map((v) => [name, v] as const);
  });
  return fc.oneof(
    { weight: 5, arbitrary: withSpec.map(([n, v]) => [`--${n}=${v}`]) },
    { weight: 3, arbitrary: withSpec.map(([n, v]) => [`--${n}`, v]) },
    { weight: 2, arbitrary: nameFor(schema).map((n) => [`--${n}`]) },
    { weight: 1, arbitrary: valueFor(undefined).map((v) => [v]) }, // a positional argument
    { weight: 1, arbitrary: fc.constantFrom('--', '-h', '-x', '-1', '---x', '--=1').map((a) => [a]) },
  );
}

/** A layer of option values as a config file or a saved run holds them (JSON values of any kind). */
function layerFor(schema: Schema): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(schema);
  const odd = fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constantFrom(Infinity, -Infinity, NaN, -0, 1e20, 2 ** 53, -1, 0.5));
  const known = fc.constantFrom(...keys).chain((k) => fc.tuple(fc.constantFrom(k, kebab(k), snake(k)),
    fc.oneof({ weight: 3, arbitrary: valueFor(schema[k]) }, { weight: 1, arbitrary: odd })));
  const unknown = fc.tuple(fc.string({ maxLength: 8 }), odd);
  return fc.array(fc.oneof({ weight: 4, arbitrary: known }, { weight: 1, arbitrary: unknown }), { maxLength: 3 })
    .map((entries) => Object.fromEntries(entries) as Record<string, unknown>);
}

/** What a parsed value must satisfy, checked independently of the parser. */
function checkValue(spec: OptSpec, v: unknown, where: string): void {
  if (Array.isArray(spec.type)) { assert.ok((spec.type as string[]).includes(v as string), where); return; }
  switch (spec.type) {
    case 'string': assert.equal(typeof v, 'string', where); return;
    case 'boolean': assert.equal(typeof v, 'boolean', where); return;
    default: {
      assert.equal(typeof v, 'number', where);
      const x = v as number;
      assert.ok(Number.isFinite(x), `${where}: ${x} is not finite`);
      assert.ok(!Object.is(x, -0), `${where}: -0`);
      if (spec.type === 'int') assert.ok(Number.isSafeInteger(x), `${where}: ${x} is not a safe integer`);
      if (spec.min !== undefined) assert.ok(spec.minExclusive ? x > spec.min : x >= spec.min, `${where}: ${x} below ${spec.min}`);
      if (spec.max !== undefined) assert.ok(spec.maxExclusive ? x < spec.max : x <= spec.max, `${where}: ${x} above ${spec.max}`);
    }
  }
}

/** One case: parse (with an optional layer beneath), then either valid options or a UsageError that says what to change. */
function runCase(cmd: CommandOptions<Schema>, argv: string[], base?: ValueLayer): 'ok' | 'refused' {
  const t0 = performance.now();
  let outcome: 'ok' | 'refused';
  try {
    const { values, positional } = parseAndCheck(cmd, argv, base);
    for (const [k, spec] of Object.entries(cmd.schema)) checkValue(spec, (values as Record<string, unknown>)[k], `${cmd.name} ${k}`);
    assert.deepEqual(Object.keys(values).sort(), Object.keys(cmd.schema).sort(), 'no key beyond the schema');
    if (!cmd.freePositionals) assert.deepEqual(positional, [], 'positional arguments left over');
    outcome = 'ok';
  } catch (e) {
    if (!(e instanceof UsageError)) throw new Error(`${cmd.name} ${JSON.stringify(argv)}: threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    // it names a flag, an argument or the layer the value came from
    assert.match(e.message, /--|argument|^-|config file|saved run/, `${cmd.name} ${JSON.stringify(argv)}: ${e.message}`);
    assert.doesNotMatch(e.message, /undefined|\[object Object\]/, e.message);
    outcome = 'refused';
  }
  const ms = performance.now() - t0;
  assert.ok(ms < CASE_MS, `${cmd.name} ${JSON.stringify(argv)} took ${ms.toFixed(0)} ms`);
  return outcome;
}

test('fuzz: random command lines for every command either parse to valid options or throw UsageError', { timeout: 60_000 }, () => {
  const seen = { ok: 0, refused: 0 };
  const cmdIndex = fc.integer({ min: 0, max: COMMANDS.length - 1 });
  const arb = cmdIndex.chain((i) => fc.tuple(fc.constant(i), fc.array(argFor(COMMANDS[i]!.schema), { maxLength: 8 }).map((a) => a.flat())));
  fc.assert(fc.property(arb, ([i, argv]) => { seen[runCase(COMMANDS[i]!, argv)]++; }), { numRuns: 1200 });
  // both outcomes occur: the generator reaches valid option sets, not only errors
  assert.ok(seen.ok >= 50 && seen.refused >= 50, JSON.stringify(seen));
});

test('fuzz: random saved-run and config-file layers beneath random flags', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-fuzz-'));
  try {
    const seen = { ok: 0, refused: 0 };
    const cmdIndex = fc.integer({ min: 0, max: COMMANDS.length - 1 });
    const arb = cmdIndex.chain((i) => fc.tuple(fc.constant(i), layerFor(COMMANDS[i]!.schema), layerFor(COMMANDS[i]!.schema),
      fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.string({ maxLength: 20 }) }),
      fc.array(argFor(COMMANDS[i]!.schema), { maxLength: 3 }).map((a) => a.flat())));
    let n = 0;
    fc.assert(fc.property(arb, ([i, saved, file, garbage, argv]) => {
      // a config file: the generated object, or text that may not be JSON at all
      const cfg = join(dir, `c${n++ % 8}.json`);
      writeFileSync(cfg, garbage ?? JSON.stringify(file));
      seen[runCase(COMMANDS[i]!, [`--config=${cfg}`, ...argv], { values: saved, from: 'saved run' })]++;
    }), { numRuns: 600 });
    assert.ok(seen.ok >= 30 && seen.refused >= 50, JSON.stringify(seen));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fuzz: the odd numbers, one by one, on every numeric option of every command', () => {
  let checked = 0;
  for (const cmd of COMMANDS) {
    for (const [k, spec] of Object.entries(cmd.schema)) {
      if (spec.type !== 'int' && spec.type !== 'number') continue;
      for (const v of ODD_NUMBERS) {
        const outcome = runCase(cmd, [`--${kebab(k)}=${v}`]);
        // a value that is not a finite number in range is never accepted
        const x = v.trim() === '' ? NaN : Number(v);
        const fine = Number.isFinite(x) && (spec.type !== 'int' || Number.isSafeInteger(x)) &&
          (spec.min === undefined || (spec.minExclusive ? x > spec.min : x >= spec.min)) &&
          (spec.max === undefined || (spec.maxExclusive ? x < spec.max : x <= spec.max));
        if (!fine) assert.equal(outcome, 'refused', `${cmd.name} --${kebab(k)}=${v}`);
        checked++;
      }
    }
  }
  assert.ok(checked > 300, String(checked));
});
