// savePretrained / writeSafetensorsShards: half rounding as torch does it, shards and index as transformers'
// save_pretrained writes them, streamed and atomic.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaForCausalLM, type LlamaConfigInput } from '../../src/index.js';
import { loadPretrained, savePretrained } from '../../src/node.js';
import { f32ToBf16, f32ToF16, parseSafetensors } from '../../src/io/safetensors.js';
import { readCheckpointTensors } from '../../src/io/pretrained.js';
import { parseShardSize, planShards, writeSafetensorsShards } from '../../src/io/save.js';
import { InputError, LlamatrainError } from '../../src/core/errors.js';

const tinyCfg: LlamaConfigInput = {
  vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
  rmsNormEps: 1e-5, initializerRange: 0.2,
};
// Its parameters: embed 40·16 = 640, per layer q 256 + k 128 + v 128 + o 256 + gate/up/down 3·384 + 2 norms 32 =
// 1952 (×2), final norm 16, untied lm_head 640: 5200 values, 20800 bytes as F32.
const TOTAL_PARAMS = 5200;

let root: string;
let n = 0;
const fresh = () => join(root, `d${n++}`);
before(async () => { root = await mkdtemp(join(tmpdir(), 'llamatrain-save-')); });
after(async () => { await rm(root, { recursive: true, force: true }); });

// Special values and their binary16 / bfloat16 bit patterns, derived by hand from the formats (comments say how).
const F16_CASES: [number, number, string][] = [
  [0, 0x0000, '+0'], [-0, 0x8000, '-0 keeps its sign'],
  [1, 0x3c00, '1'], [-2, 0xc000, '-2'], [0.5, 0x3800, '0.5'], [2 ** 15, 0x7800, '2^15'],
  [0.1, 0x2e66, '0.1 = 1.6·2^-4: mantissa 0.6·1024 = 614.4 → 614'], [1 / 3, 0x3555, '1/3: 0.333·1024 = 341.3 → 341'],
  [65504, 0x7bff, 'largest half'], [65519, 0x7bff, 'below the halfway point 65520'],
  [65520, 0x7c00, 'halfway between 65504 (odd) and 2^16: to even, i.e. overflow to +Inf'],
  [65536, 0x7c00, '2^16 overflows'], [1e10, 0x7c00, 'large overflows'], [-1e10, 0xfc00, 'negative overflow'],
  [Infinity, 0x7c00, '+Inf'], [-Infinity, 0xfc00, '-Inf'], [NaN, 0x7e00, 'NaN → quiet NaN'],
  [2 ** -14, 0x0400, 'smallest normal'], [2 ** -24, 0x0001, 'smallest subnormal'],
  [1023 * 2 ** -24, 0x03ff, 'largest subnormal'], [1023.5 * 2 ** -24, 0x0400, 'halfway from 0x3ff (odd) to the smallest normal: up'],
  [2 ** -25, 0x0000, 'half the smallest subnormal: tie to even 0'], [3 * 2 ** -26, 0x0001, '0.75 units: up'],
  [3 * 2 ** -25, 0x0002, '1.5 units: tie to even 2'], [5 * 2 ** -25, 0x0002, '2.5 units: tie to even 2'],
  [-(2 ** -24), 0x8001, 'negative subnormal'], [-(2 ** -26), 0x8000, 'negative underflow keeps the sign'], [2 ** -30, 0x0000, 'underflow'],
  [1 + 2 ** -11, 0x3c00, 'halfway 1 → 1+2^-10: to even (down)'], [1 + 3 * 2 ** -11, 0x3c02, 'halfway 0x3c01 → 0x3c02: to even (up)'],
  [1 + 2 ** -11 + 2 ** -20, 0x3c01, 'just above halfway: up'],
  [1 + 2 ** -11 + 2 ** -40, 0x3c00, 'float64 input is rounded to float32 first (as torch does): the 2^-40 is lost, then a tie'],
];
const BF16_CASES: [number, number, string][] = [
  [0, 0x0000, '+0'], [-0, 0x8000, '-0'], [1, 0x3f80, '1'], [-1.5, 0xbfc0, '-1.5'],
  [1 + 2 ** -8, 0x3f80, 'tie: to even (down)'], [1 + 3 * 2 ** -8, 0x3f82, 'tie: to even (up)'], [1 + 2 ** -8 + 2 ** -20, 0x3f81, 'above halfway'],
  [3.4028234663852886e38, 0x7f80, 'float32 max rounds up to +Inf'], [Infinity, 0x7f80, '+Inf'], [-Infinity, 0xff80, '-Inf'],
  [NaN, 0x7fc0, 'NaN → quiet NaN'], [2 ** -133, 0x0001, 'smallest bf16 subnormal'], [2 ** -149, 0x0000, 'smallest float32 subnormal: below half of bf16\'s'],
];

describe('half rounding (torch\'s .to(float16) / .to(bfloat16))', () => {
  it('f32ToF16 gives the hand-derived bit pattern of every special value', () => {
    for (const [v, bits, why] of F16_CASES) assert.equal(f32ToF16(v), bits, `${v}: ${why}`);
  });
  it('f32ToBf16 gives the hand-derived bit pattern of every special value', () => {
    for (const [v, bits, why] of BF16_CASES) assert.equal(f32ToBf16(v), bits, `${v}: ${why}`);
  });
  it('the writer stores exactly those patterns, from float32 and float64 sources', async () => {
    for (const [dtype, cases] of [['F16', F16_CASES], ['BF16', BF16_CASES]] as const) {
      for (const Ctor of [Float32Array, Float64Array]) {
        const dir = fresh();
        // float64 → float32 → half, as torch: the double-rounding case is only for float64 sources
        const use = Ctor === Float32Array ? cases.filter(([, , why]) => !why.startsWith('float64')) : cases;
        const values = Ctor.from(use.map(([v]) => v));
        await writeSafetensorsShards(dir, [{ name: 'x', shape: [values.length], read: () => [values] }], { dtype, sync: false });
        const t = parseSafetensors(readFileSync(join(dir, 'model.safetensors')), 'x', { keepHalf: true }).tensors.get('x')!;
        assert.equal(t.dtype, dtype === 'F16' ? 'float16' : 'bfloat16');
        use.forEach(([v, bits, why], i) => assert.equal(t.data[i], bits, `${dtype} from ${Ctor.name}: ${v} (${why})`));
      }
    }
  });
});

describe('shard planning and sizes (huggingface_hub\'s split)', () => {
  it('splits greedily in order; a tensor over the limit gets a shard of its own, appended when met', () => {
    // 4+4 fill a shard of 8; the next 4 opens a new one; 10 > 8 is alone (listed at once); 3 joins the open shard.
    assert.deepEqual(planShards([4, 4, 4, 10, 3], 8), [[0, 1], [3], [2, 4]]);
    assert.deepEqual(planShards([8, 1, 7, 1], 8), [[0], [1, 2], [3]]);
    assert.deepEqual(planShards([1, 2, 3], 100), [[0, 1, 2]]);
  });
  it('reads sizes as transformers does ("5GB" = 5e9, "2GiB" = 2^31)', () => {
    assert.equal(parseShardSize('5GB'), 5e9);
    assert.equal(parseShardSize('2GiB'), 2 ** 31);
    assert.equal(parseShardSize('500MB'), 5e8);
    assert.equal(parseShardSize('100KiB'), 102400);
    assert.equal(parseShardSize(1234), 1234);
    for (const bad of ['5 parsecs', '', '-1GB', 0, 1.5]) assert.throws(() => parseShardSize(bad as string), InputError);
  });
});

/** The data-section sizes of a safetensors file's tensors, in the file's header order, from its bytes. */
function fileTensors(path: string): { names: string[]; bytes: Map<string, number>; metadata: Record<string, string>; dataStart: number } {
  const buf = readFileSync(path);
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  return {
    names,
    bytes: new Map(names.map((k) => [k, header[k]!.data_offsets[1] - header[k]!.data_offsets[0]])),
    metadata: header.__metadata__ as unknown as Record<string, string>,
    dataStart: 8 + len,
  };
}

async function sameWeights(a: LlamaForCausalLM, b: LlamaForCausalLM): Promise<void> {
  const pb = new Map(b.namedParameters());
  for (const [name, p] of a.namedParameters()) {
    assert.deepEqual(Array.from(await pb.get(name)!.data()), Array.from(await p.data()), name);
  }
}

describe('savePretrained: shards like save_pretrained', () => {
  it('writes 3 shards + the index exactly as transformers does, and loadPretrained reads the same model back', async () => {
    const m = new LlamaForCausalLM(tinyCfg, { seed: 5 });
    const dir = fresh();
    const max = 8000;
    await savePretrained(m, dir, { maxShardSize: max });
    const files = readdirSync(dir).sort();
    assert.deepEqual(files, ['config.json', 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);

    // Each shard: metadata {format: pt}, names in sorted order, data 8-byte aligned, at most `max` bytes; in the
    // model's parameter order the shards hold consecutive runs, and each is full: adding the next shard's first
    // tensor would pass the limit (these properties define the greedy split).
    const order = [...m.namedParameters()].map(([k]) => k);
    const shards = [1, 2, 3].map((i) => fileTensors(join(dir, `model-0000${i}-of-00003.safetensors`)));
    let at = 0;
    for (const [i, s] of shards.entries()) {
      assert.deepEqual(s.metadata, { format: 'pt' });
      assert.deepEqual(s.names, s.names.slice().sort());
      assert.equal(s.dataStart % 8, 0);
      const size = [...s.bytes.values()].reduce((x, y) => x + y, 0);
      assert.ok(size <= max, `shard ${i + 1}: ${size} bytes`);
      const run = order.slice(at, at + s.names.length);
      assert.deepEqual(run.slice().sort(), s.names.slice().sort(), `shard ${i + 1} holds the next tensors in order`);
      at += run.length;
      if (i < 2) assert.ok(size + 4 * [...m.namedParameters()].find(([k]) => k === order[at])![1].size > max, `shard ${i + 1} is full`);
    }
    assert.equal(at, order.length);

    // The index, as `json.dumps(index, indent=2, sort_keys=True) + "\n"` prints it, written out here by hand.
    const where = new Map<string, string>();
    shards.forEach((s, i) => s.names.forEach((k) => where.set(k, `model-0000${i + 1}-of-00003.safetensors`)));
    const lines = [...where.keys()].sort().map((k) => `    "${k}": "${where.get(k)}"`);
    const expected = `{\n  "metadata": {\n    "total_parameters": ${TOTAL_PARAMS},\n    "total_size": ${TOTAL_PARAMS * 4}\n  },\n` +
      `  "weight_map": {\n${lines.join(',\n')}\n  }\n}\n`;
    assert.equal(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'), expected);
    assert.equal(where.size, order.length);

    await sameWeights(await loadPretrained(dir), m);
    assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).torch_dtype, 'float32');
  });

  it('BF16 and F16: the stored bits are the rounding of each weight; keepHalf reads them back raw from the shards', async () => {
    const m = new LlamaForCausalLM(tinyCfg, { seed: 6 });
    for (const [dtype, round, name] of [['BF16', f32ToBf16, 'bfloat16'], ['F16', f32ToF16, 'float16']] as const) {
      const dir = fresh();
      await savePretrained(m, dir, { dtype, maxShardSize: '6KB' });
      assert.ok(existsSync(join(dir, 'model.safetensors.index.json')));
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      assert.equal(cfg.torch_dtype, name);
      assert.equal(cfg.dtype, name);
      const raw = await readCheckpointTensors(dir, { keepHalf: true });
      for (const [k, p] of m.namedParameters()) {
        const t = raw.get(k)!;
        assert.equal(t.dtype, name, k);
        assert.deepEqual(Array.from(t.data), Array.from(await p.data(), round), k);
      }
      const back = await loadPretrained(dir); // and the float32 loader takes the half files too
      assert.equal([...back.namedParameters()].length, [...m.namedParameters()].length);
    }
  });

  it('removes the weight files of an earlier save that this one does not replace', async () => {
    const m = new LlamaForCausalLM(tinyCfg, { seed: 7 });
    const dir = fresh();
    await savePretrained(m, dir); // one file
    await savePretrained(m, dir, { maxShardSize: 8000 }); // 3 shards: the single file must go (it would be read first)
    assert.ok(!existsSync(join(dir, 'model.safetensors')));
    await savePretrained(m, dir, { maxShardSize: 12000 }); // 2 shards: shard 3 and the old index go
    assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
    assert.match(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'), /-of-00002/);
    await savePretrained(m, dir); // back to one file
    assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
    await sameWeights(await loadPretrained(dir), m);
  });
});

describe('savePretrained is atomic', () => {
  /** The model with one parameter (the `k`-th) whose read runs `hook` first. */
  function withHook(m: LlamaForCausalLM, k: number, hook: () => void): LlamaForCausalLM {
    const p = [...m.namedParameters()][k]![1];
    const orig = p.data.bind(p);
    p.data = async () => { hook(); return orig(); };
    return m;
  }
  const snapshot = (dir: string) => new Map(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f)).toString('base64')]));

  it('a failure in the middle of a sharded save leaves no file, and an earlier save untouched', async () => {
    const dir = fresh();
    const good = new LlamaForCausalLM(tinyCfg, { seed: 8 });
    await savePretrained(good, dir);
    const before = snapshot(dir);
    // parameter 12 sits in the second shard of three: shard 1 is complete on disk (under a temp name) when it fails
    const bad = withHook(new LlamaForCausalLM(tinyCfg, { seed: 9 }), 12, () => { throw new Error('device lost'); });
    await assert.rejects(savePretrained(bad, dir, { maxShardSize: 8000 }), /device lost/);
    assert.deepEqual(snapshot(dir), before, 'the earlier save is intact and nothing was added');
    await sameWeights(await loadPretrained(dir), good);

    const empty = fresh();
    const bad2 = withHook(new LlamaForCausalLM(tinyCfg, { seed: 9 }), 12, () => { throw new Error('device lost'); });
    await assert.rejects(savePretrained(bad2, empty, { maxShardSize: 8000 }), /device lost/);
    assert.deepEqual(readdirSync(empty), []);
  });

  it('a directory that disappears during the save: a LlamatrainError naming the file, and nothing recreated', async () => {
    const dir = fresh();
    const m = withHook(new LlamaForCausalLM(tinyCfg, { seed: 10 }), 12, () => rmSync(dir, { recursive: true, force: true }));
    await assert.rejects(savePretrained(m, dir, { maxShardSize: 8000 }), (e: unknown) =>
      e instanceof LlamatrainError && e.message.includes(join(dir, 'model-0000')));
    assert.ok(!existsSync(dir));
  });

  it('a source that gives the wrong number of values is refused, leaving nothing', async () => {
    const dir = fresh();
    mkdirSync(dir);
    await assert.rejects(writeSafetensorsShards(dir, [
      { name: 'a', shape: [2, 2], read: () => [new Float32Array(4)] },
      { name: 'b', shape: [3], read: () => [new Float32Array(2)] },
    ], { maxShardSize: 16 }), (e: unknown) => e instanceof InputError && /"b": shape \[3\] has 3 elements but its source gave 2/.test(e.message));
    assert.deepEqual(readdirSync(dir), []);
    assert.ok(statSync(dir).isDirectory());
  });
});
