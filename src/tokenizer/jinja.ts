// Chat templates rendered with @huggingface/jinja, as transformers renders them (trim_blocks, lstrip_blocks,
// {% generation %} tracking). Importing this module installs it as the renderer of applyChatTemplate
// (src/tokenizer/chat.ts); it is its own entry (`llamatrain/chat`) so the main entry loads no template engine.
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { GEN_CLOSE, GEN_OPEN, useChatRenderer, type ChatRenderLimits } from './chat.js';
import { InputError } from '../core/errors.js';

const compiled = new Map<string, Template>();

// @huggingface/jinja 0.5's str.strip/lstrip/rstrip ignore their argument (`x.lstrip('\n')` strips every
// whitespace character); Python strips only the given characters, and Qwen3's template relies on it (a reply
// that starts with a space keeps it). We give the three methods Python's semantics by wrapping the string value's
// built-in table once. Its classes are not exported, so they are reached through a value the library made.
function patchStripMethods(): void {
  const env = new Environment();
  env.set('s', 's');
  const sample = env.lookupVariable('s') as unknown as { constructor: { prototype: object }; builtins?: Map<string, { constructor: new (fn: (args: unknown[]) => unknown) => unknown }> };
  const proto = sample.constructor.prototype;
  const desc = Object.getOwnPropertyDescriptor(proto, 'builtins');
  if (!desc?.get || (proto as { __pyStrip?: boolean }).__pyStrip) return;
  const StringCtor = sample.constructor as unknown as new (v: string) => unknown;
  const getter = desc.get;
  const strip = (value: string, chars: unknown, left: boolean, right: boolean): string => {
    if (chars === undefined || chars === null) return left && right ? value.trim() : left ? value.trimStart() : value.trimEnd();
    const set = new Set(String(chars));
    let a = 0, b = value.length;
    if (left) while (a < b && set.has(value[a]!)) a++;
    if (right) while (b > a && set.has(value[b - 1]!)) b--;
    return value.slice(a, b);
  };
  Object.defineProperty(proto, 'builtins', {
    configurable: true,
    get(this: { value: string }) {
      const map = getter.call(this) as Map<string, unknown> & { __pyStrip?: boolean };
      if (!map.__pyStrip) {
        const FunctionValue = (map.get('strip') as { constructor: new (fn: (args: { value: unknown }[]) => unknown) => unknown }).constructor;
        const value = this.value;
        for (const [name, left, right] of [['strip', true, true], ['lstrip', true, false], ['rstrip', false, true]] as const) {
          map.set(name, new FunctionValue((args) => new StringCtor(strip(value, args[0]?.value, left, right))));
        }
        map.__pyStrip = true;
      }
      return map;
    },
  });
  (proto as { __pyStrip?: boolean }).__pyStrip = true;
}
patchStripMethods();

// A chat template is untrusted input (it comes with a downloaded tokenizer_config.json): `range(100000000)` or a
// string doubled in a loop would take the process's whole heap. @huggingface/jinja has no limits of its own, so
// while one of *our* renders runs, its interpreter's `evaluate` counts steps and the characters of every string
// value it produces (an upper bound on the output and on the work done with strings) and watches the clock, and
// `range` refuses long lists. Other users of the library in the process are not affected (no budget is active).
export const DEFAULT_RENDER_LIMITS: Required<ChatRenderLimits> = { maxSteps: 2_000_000, maxChars: 50_000_000, maxMs: 10_000 };
const MAX_RANGE = 100_000;
interface Budget { limits: Required<ChatRenderLimits>; steps: number; chars: number; start: number }
let budget: Budget | null = null;

class TemplateLimitError extends InputError {}

function overBudget(what: string): never {
  throw new TemplateLimitError(`the template ${what}; a chat template should render a conversation in well under a second ` +
    '(is this template hostile or broken? use a trusted one, or raise the limits: renderLimits)');
}

function step(b: Budget): void {
  if (++b.steps > b.limits.maxSteps) overBudget(`took more than ${b.limits.maxSteps.toLocaleString('en-US')} evaluation steps`);
  if ((b.steps & 4095) === 0 && Date.now() - b.start > b.limits.maxMs) overBudget(`ran longer than ${b.limits.maxMs} ms`);
}

function patchInterpreter(): void {
  const proto = Interpreter.prototype as unknown as { evaluate(s: unknown, e: unknown): { type: string; value: unknown }; __budget?: boolean };
  if (proto.__budget) return;
  const evaluate = proto.evaluate;
  proto.evaluate = function (this: unknown, statement: unknown, env: unknown) {
    const b = budget;
    if (b === null) return evaluate.call(this, statement, env);
    step(b);
    const v = evaluate.call(this, statement, env);
    if (v.type === 'StringValue') {
      b.chars += (v.value as string).length;
      if (b.chars > b.limits.maxChars) overBudget(`produced more than ${b.limits.maxChars.toLocaleString('en-US')} characters of text`);
    } else if (v.type === 'ArrayValue') {
      // a list is likely iterated, and a for loop walks it once before running its body: count its items as steps
      const n = (v.value as unknown[]).length;
      b.steps += n;
      b.chars += n;
      if (b.chars > b.limits.maxChars) overBudget(`built lists of more than ${b.limits.maxChars.toLocaleString('en-US')} items`);
    }
    return v;
  };
  proto.__budget = true;
  // the library's globals are set with Environment.set at each render: under a budget, `range` is ours
  const envProto = Environment.prototype as unknown as { set(name: string, value: unknown): unknown; setVariable(name: string, value: unknown): unknown };
  const set = envProto.set;
  // a loop with an empty body evaluates nothing per iteration, but sets `loop` and its variable: count those as steps
  const setVariable = envProto.setVariable;
  envProto.setVariable = function (this: unknown, name: string, value: unknown) {
    if (budget !== null) step(budget);
    return setVariable.call(this, name, value);
  };
  envProto.set = function (this: unknown, name: string, value: unknown) {
    return set.call(this, name, budget !== null && name === 'range' && typeof value === 'function' ? boundedRange : value);
  };
}
patchInterpreter();

/** Jinja's range(), refusing lists longer than MAX_RANGE (the library builds the whole list first). */
function boundedRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) { stop = start; start = 0; }
  if (step === 0) throw new InputError('range() step must not be zero');
  const n = Math.max(0, Math.ceil((stop - start) / step));
  if (!(n <= MAX_RANGE)) overBudget(`asked for range() of ${Number.isFinite(n) ? n.toLocaleString('en-US') : n} items (at most ${MAX_RANGE.toLocaleString('en-US')})`);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(start + i * step);
  return out;
}

/** Compiles (cached) a template; `{% generation %}` tags become sentinel output (see `renderTracked`). */
function compile(source: string): Template {
  let t = compiled.get(source);
  if (t === undefined) {
    // Apply lstrip_blocks and trim_blocks to the generation tags ourselves (they are block tags in Jinja), then
    // turn each into an expression that writes a sentinel, with the same whitespace control.
    const src = source
      .replace(/^[ \t]*(?=\{%-?\s*(?:end)?generation\s*-?%\})/gm, '')
      .replace(/(\{%-?\s*(?:end)?generation\s*-?%\})\n/g, '$1')
      .replace(/\{%(-?)\s*(end)?generation\s*(-?)%\}/g, (_m, l: string, end: string | undefined, r: string) => `{{${l} '${end ? GEN_CLOSE : GEN_OPEN}' ${r}}}`);
    try {
      t = new Template(src);
    } catch (e) {
      throw new InputError(`chat template: could not parse it (${(e as Error).message})`, { cause: e });
    }
    if (compiled.size > 64) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

/** Renders a template; returns the text and the character spans of its `{% generation %}` blocks. */
export function renderJinja(template: string, variables: Record<string, unknown>, limits: ChatRenderLimits = {}):
    { text: string; generation: [number, number][] } {
  let raw: string;
  const t = compile(template);
  const outer = budget;
  budget = { limits: { ...DEFAULT_RENDER_LIMITS, ...limits }, steps: 0, chars: 0, start: Date.now() };
  try {
    raw = t.render(variables);
  } catch (e) {
    if (e instanceof TemplateLimitError) throw new InputError(`chat template: ${e.message}`);
    throw new InputError(`chat template: ${(e as Error).message}`, { cause: e });
  } finally {
    budget = outer;
  }
  if (!raw.includes(GEN_OPEN) && !raw.includes(GEN_CLOSE)) return { text: raw, generation: [] };
  let text = '';
  const stack: number[] = [];
  const generation: [number, number][] = [];
  let last = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== GEN_OPEN && c !== GEN_CLOSE) continue;
    text += raw.slice(last, i);
    last = i + 1;
    if (c === GEN_OPEN) stack.push(text.length);
    else {
      const start = stack.pop();
      if (start === undefined) throw new InputError('chat template: {% endgeneration %} without {% generation %}');
      generation.push([start, text.length]);
    }
  }
  text += raw.slice(last);
  return { text, generation };
}


useChatRenderer(renderJinja);
