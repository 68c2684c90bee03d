// Chat templates rendered with @huggingface/jinja, as transformers renders them (trim_blocks, lstrip_blocks,
// {% generation %} tracking). Importing this module installs it as the renderer of applyChatTemplate
// (src/tokenizer/chat.ts); it is its own entry (`llamatrain/chat`) so the main entry loads no template engine.
import { Environment, Template } from '@huggingface/jinja';
import { GEN_CLOSE, GEN_OPEN, useChatRenderer } from './chat.js';

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
      throw new Error(`chat template: could not parse it (${(e as Error).message})`, { cause: e });
    }
    if (compiled.size > 64) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

/** Renders a template; returns the text and the character spans of its `{% generation %}` blocks. */
export function renderJinja(template: string, variables: Record<string, unknown>): { text: string; generation: [number, number][] } {
  let raw: string;
  try {
    raw = compile(template).render(variables);
  } catch (e) {
    throw new Error(`chat template: ${(e as Error).message}`, { cause: e });
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
      if (start === undefined) throw new Error('chat template: {% endgeneration %} without {% generation %}');
      generation.push([start, text.length]);
    }
  }
  text += raw.slice(last);
  return { text, generation };
}


useChatRenderer(renderJinja);
