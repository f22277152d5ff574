#!/usr/bin/env python3
"""Reference renderings for SparrowJinja's golden tests.

Extracts `tokenizer.chat_template` (and the BOS/EOS token texts) from the GGUF models and
renders each template with Python jinja2 configured exactly as Hugging Face transformers
does in `apply_chat_template` (ImmutableSandboxedEnvironment with trim_blocks=True,
lstrip_blocks=True, the loopcontrols extension, a `raise_exception` global and a `tojson`
filter that is `json.dumps(ensure_ascii=False)` without key sorting).

Writes Tests/Fixtures/templates/chat_templates.json (model templates x conversations) and
Tests/Fixtures/templates/expressions.json (small templates exercising the language).

With --check-llama-cpp it instead renders every chat case of the GGUF templates through
llama.cpp (xllamacpp's llama-server, /apply-template with jinja enabled) and reports
whether llama.cpp agrees with the committed goldens.

Usage: python3 scripts/make_template_goldens.py [--check-llama-cpp] [models_dir]
"""
import json
import os
import sys

import gguf
import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
MODELS_DIR = ARGS[0] if ARGS else os.path.expanduser("~/.cache/sparrow/models")
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "templates")

MODELS = ["smollm2-135m", "qwen2.5-coder-0.5b", "gemma3-270m"]

# gemma3-270m.gguf carries no tokenizer.chat_template (llama.cpp then falls back to
# ChatML). Google's published Gemma 3 chat template (tokenizer_config.json of
# google/gemma-3-270m-it and the other Gemma 3 models) is rendered instead under the name
# "gemma3-hf-template", as a real-world template with raise_exception, `is string`, trim.
GEMMA3_HF_TEMPLATE = r"""{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def model_template(name):
    reader = gguf.GGUFReader(os.path.join(MODELS_DIR, name + ".gguf"))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    bos = tokens[reader.fields["tokenizer.ggml.bos_token_id"].contents()]
    eos = tokens[reader.fields["tokenizer.ggml.eos_token_id"].contents()]
    field = reader.fields.get("tokenizer.chat_template")
    if field is not None:
        return {"name": name, "origin": f"{name}.gguf tokenizer.chat_template", "template": field.contents(),
                "bos_token": bos, "eos_token": eos}
    return {"name": "gemma3-hf-template", "origin": f"Gemma 3 template from Hugging Face ({name}.gguf has none)",
            "template": GEMMA3_HF_TEMPLATE, "bos_token": bos, "eos_token": eos}


TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city — «quoted» \"text\"",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                       "required": ["city"]},
    },
}]

CONVERSATIONS = {
    "single-user": [{"role": "user", "content": "Hello!"}],
    "system-user": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}],
    "multi-turn": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    "system-multi-turn": [
        {"role": "system", "content": "Be nice."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
    ],
    "unicode-whitespace": [
        {"role": "user", "content": "  Grüße, 世界! 🦜\nline two\n\n\ttabbed  "},
        {"role": "assistant", "content": "\nÇa va? \"quotes\" and 'single' \\ backslash\n"},
        {"role": "user", "content": "{{ not a template }} {% neither %}"},
    ],
    "empty-content": [{"role": "user", "content": ""}],
}

TOOL_CONVERSATIONS = {
    "tool-calls": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "tool", "content": "sunny"},
        {"role": "user", "content": "Thanks"},
    ],
}


def chat_cases(env, templates):
    cases = []
    for spec in templates:
        template = env.from_string(spec["template"])
        conversations = dict(CONVERSATIONS)
        if spec["name"] != "gemma3-hf-template":
            conversations.update(TOOL_CONVERSATIONS)
        else:
            conversations["not-alternating"] = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
        for conversation_name, messages in conversations.items():
            for add_generation_prompt in (True, False):
                variants = [("", {})]
                if "tool" in conversation_name or spec["name"].startswith("qwen"):
                    variants.append(("+tools", {"tools": TOOLS}))
                for suffix, extra in variants:
                    context = {"messages": messages, "add_generation_prompt": add_generation_prompt,
                               "bos_token": spec["bos_token"], "eos_token": spec["eos_token"], **extra}
                    case = {"template": spec["name"],
                            "name": f"{conversation_name}{suffix}/gen={add_generation_prompt}",
                            "context": context}
                    try:
                        case["expected"] = template.render(**context)
                    except jinja2.exceptions.TemplateError as error:
                        case["error"] = str(error)
                    cases.append(case)
    return cases


# Small templates exercising the language; rendered by the reference, compared by the
# Swift tests. Cases the reference rejects record its error message. Tuples are never
# printed: SparrowJinja represents them as lists, which only differ in their repr.
EXPRESSIONS = [
    ("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 7 / 2 }}|{{ 4 / 2 }}|{{ 2 ** 10 }}", {}),
    ("{{ 2 ** 3 ** 2 }}|{{ -2 ** 2 }}|{{ 1.5 + 1 }}|{{ 0.1 + 0.2 }}|{{ 1e20 }}|{{ 1e-7 }}|{{ 3.0 }}|{{ 10 / 4 }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true }}|{{ 'ab' * 3 }}|{{ [1] * 2 }}|{{ [1, 2] + [3] }}|{{ 'x' + 'y' }}", {}),
    ("{{ 1 == 1.0 }}{{ true == 1 }}{{ 'a' < 'b' }}{{ [1, 2] < [1, 3] }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ 'a' != 'a' }}", {}),
    ("{{ 'ell' in 'hello' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ 'z' not in 'abc' }}{{ not 0 }}{{ not '' }}", {}),
    ("{{ 0 or 'x' }}|{{ 1 and 'y' }}|{{ '' or none }}|{{ [] and 1 }}|{{ none }}|{{ true }}|{{ false }}", {}),
    ("{{ 'yes' if x else 'no' }}|{{ 'yes' if y else 'no' }}|{{ 'only' if false }}|", {"x": [0]}),
    ("{{ [1, 'a', none, true, 1.5, {'k': \"it's\", 'q': 'say \"hi\"'}] }}|{{ {'a': [1, {'b': none}]} }}", {}),
    ("{{ 'a\\nb\\tc\\\\d\\'e\\\"f\\u00e9\\x41' }}|{{ \"double 'quoted'\" }}|{{ 'con' 'cat' }}", {}),
    ("{{ s[1:] }}|{{ s[:-1] }}|{{ s[::-1] }}|{{ s[1:4:2] }}|{{ l[1:] }}|{{ l[-1] }}|{{ l[10] }}|{{ s[0] }}|{{ l[-2:] }}|{{ s[10:] }}",
     {"s": "héllo", "l": [1, 2, 3]}),
    ("{{ d.a }}|{{ d['b'] }}|{{ d.missing }}|{{ d.c.d }}|{{ l.0 }}|{{ d.get('a') }}|{{ d.get('z', 'dflt') }}|{{ d.get('z') }}",
     {"d": {"a": 1, "b": "two", "c": {"d": [3]}}, "l": ["first"]}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{{ d.keys() | list }}|{{ d.values() | list }}|{% for k in d %}{{ k }}{% endfor %}",
     {"d": {"z": 1, "a": 2, "m": 3}}),
    ("{% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}/{{ loop.previtem }}/{{ loop.nextitem }};{% endfor %}",
     {"xs": ["a", "b", "c"]}),
    ("{% for x in xs if x > 1 %}{{ x }}{{ ',' if not loop.last }}{% else %}empty{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}",
     {"xs": [1, 2, 3, 0, 5]}),
    ("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}|{{ range(3) | list }}|{{ range(1, 10, 3) | list }}|{{ range(5, 0, -2) | list }}", {}),
    ("{% set x = 0 %}{% for i in range(3) %}[{{ x }}]{% set x = i + 10 %}{% endfor %}{{ x }}|{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("{% set ns = namespace(found=false, n=0) %}{% for m in ms %}{% if m == 'b' %}{% set ns.found = true %}{% endif %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.found }} {{ ns.n }}",
     {"ms": ["a", "b", "c"]}),
    ("{% set a, b = [1, 2] %}{{ a }}{{ b }}|{% set t = 1, 2 %}{{ t | join('+') }}|{% set block %}in {{ 'block' }}{% endset %}{{ block | upper }}", {}),
    ("{% if x %}x{% elif y %}y{% elif z %}z{% else %}none{% endif %}|{% if not x %}notx{% endif %}", {"z": 1}),
    ("{{ undefined_var }}|{{ undefined_var is defined }}|{{ undefined_var is undefined }}|{{ undefined_var | default('dflt') }}|{{ '' | default('d2', true) }}|{{ undefined_var | length }}|{% for x in undefined_var %}no{% endfor %}|{{ 'x' if undefined_var else 'y' }}", {}),
    ("{{ n is none }}{{ n is defined }}{{ 's' is string }}{{ 1 is string }}{{ 1 is number }}{{ 1.5 is float }}{{ 1 is integer }}{{ true is boolean }}{{ {} is mapping }}{{ [] is iterable }}{{ 's' is iterable }}{{ 4 is even }}{{ 3 is odd }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}{{ 1 is not none }}{{ 'a' is equalto 'a' }}{{ 'ab' is lower }}",
     {"n": None}),
    ("{{ '  x y  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'hello world' | upper }}|{{ 'HeLLo' | lower }}|{{ 'hello WORLD' | capitalize }}|{{ 'hello wide-world (big)' | title }}|{{ 'hello wide-world' .title() }}", {}),
    ("{{ [3, 1, 2] | length }}|{{ 'héllo' | length }}|{{ {'a': 1} | count }}|{{ [1, 2, 3] | first }}|{{ [1, 2, 3] | last }}|{{ 'abc' | list }}|{{ [1, 2, 3] | reverse | list }}|{{ 'abc' | reverse }}|{{ [1, 2] | join(', ') }}|{{ [1, 2] | join }}", {}),
    ("{{ x | tojson }}|{{ 'ü\"\\n\\u0001<>&\\'' | tojson }}|{{ [1.0, 2.5, none, true] | tojson }}|{{ {} | tojson }}|{{ [] | tojson }}|{{ x | tojson(indent=2) }}|{{ y | tojson }}|{{ x | tojson(separators=(',', ':')) }}|{{ x | tojson(sort_keys=true, indent=1, separators=(';', '=')) }}",
     {"x": {"b": 1, "a": [1, {"c": "d"}], "e": {}}, "y": 1e100}),
    ("{{ 42 | string }}{{ '12' | int + 1 }}{{ '3.7' | int }}{{ 3.7 | int }}{{ 'x' | int }}{{ 'x' | int(5) }}{{ '2.5' | float }}{{ 2 | float }}{{ -3 | abs }}{{ 2.5 | round }}{{ 3.14159 | round(2) }}{{ 2.1 | round(0, 'ceil') }}", {}),
    ("{{ [3, 1, 2] | sort }}|{{ ['b', 'A', 'c'] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ ms | sort(attribute='n') | map(attribute='n') | list }}|{{ ['a', 'A', 'b'] | unique | list }}|{{ [3, 1, 2] | min }}|{{ [3, 1, 2] | max }}|{{ [1, 2, 3] | sum }}",
     {"ms": [{"n": 2}, {"n": 1}]}),
    ("{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|{{ ms | rejectattr('role', 'equalto', 'user') | list | length }}|{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('odd') | list }}|{{ ['a', 'b'] | map('upper') | join }}|{{ ms | selectattr('flag') | list | length }}",
     {"ms": [{"role": "user", "content": "u1", "flag": True}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}]}),
    ("{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}|{% for k, v in d | dictsort %}{{ k }}{{ v }}{% endfor %}|{{ 'a-b-c' | replace('-', '+') }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'line1\\nline2\\n\\nline3' | indent(2) }}|{{ 'l1\\nl2' | indent(4, first=true) }}|{{ '<a href=\"x\">' | e }}",
     {"d": {"b": 1, "a": 2}}),
    ("{{ '  a b  '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}|{{ 'hello'.startswith('he') }}|{{ 'hello'.endswith('lo') }}|{{ 'hello'.startswith(('x', 'h')) }}|{{ 'a,b,,c'.split(',') }}|{{ '  a  b c '.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}|{{ 'abc'.replace('b', 'B') }}|{{ 'hello'.find('l') }}|{{ '-'.join(['a', 'b']) }}", {}),
    ("{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }}", {}),
    ("a\n  {% if true %}\n  b\n  {% endif %}\n  {{ 'c' }}  \n{# comment #}\nd\n", {}),
    ("  {%- if true -%}  x  {%- endif -%}  |  {{- 'y' -}}  |{{ 'z' }}\n{% if true %}+{% endif %}\n{%+ if true %}p{% endif %}\n", {}),
    ("{% raw %}{{ not rendered }}{% endraw %}|{#- comment -#} x {# #}|{{ '{{' }}", {}),
    ("{{ [1, 2, 3] | map('string') | join('-') }}|{{ {'a': 1}.items() | list | length }}|{{ dict(x=1, y=2) }}|{{ (1, 2) | join }}|{{ () | length }}|{{ [] }}|{{ {} }}", {}),
    ("{% for m in messages %}{% if m.role == 'user' %}{% set content = m.content | trim %}{{ content }}{% endif %}{% endfor %}|{{ content }}",
     {"messages": [{"role": "user", "content": " hi "}]}),
    ("{{ foo.bar }}", {}),
    ("{{ 1 + 'a' }}", {}),
    ("{{ raise_exception('custom failure') }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{{ undefined_var + 1 }}", {}),
    ("{{ 'a' < 1 }}", {}),
]


def expression_cases(env):
    cases = []
    for source, context in EXPRESSIONS:
        case = {"template": source, "context": context}
        try:
            case["expected"] = env.from_string(source).render(**context)
        except jinja2.exceptions.TemplateError as error:
            case["error"] = str(error)
        except (TypeError, ZeroDivisionError) as error:
            case["error"] = str(error)
        cases.append(case)
    return cases


def check_llama_cpp():
    import urllib.request
    import xllamacpp

    with open(os.path.join(OUT_DIR, "chat_templates.json"), encoding="utf-8") as file:
        fixture = json.load(file)
    for spec in fixture["templates"]:
        if not spec["origin"].endswith("tokenizer.chat_template"):
            continue
        params = xllamacpp.CommonParams()
        params.model.path = os.path.join(MODELS_DIR, spec["name"] + ".gguf")
        params.n_ctx, params.n_parallel, params.use_jinja = 512, 1, True
        server = xllamacpp.Server(params)
        matched, differed = 0, []
        for case in fixture["cases"]:
            if case["template"] != spec["name"] or "expected" not in case:
                continue
            context = case["context"]
            body = {"messages": context["messages"], "add_generation_prompt": context["add_generation_prompt"]}
            if "tools" in context:
                body["tools"] = context["tools"]
            request = urllib.request.Request(server.listening_address.rstrip("/") + "/apply-template",
                                             data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
            prompt = json.load(urllib.request.urlopen(request))["prompt"]
            if prompt == case["expected"]:
                matched += 1
            else:
                differed.append(case["name"])
        print(f"{spec['name']}: llama.cpp matches {matched} cases, differs on {differed or 'none'}")
        del server


def main():
    if "--check-llama-cpp" in sys.argv:
        check_llama_cpp()
        return
    env = environment()
    templates = [model_template(name) for name in MODELS]
    chat = {"generator": "scripts/make_template_goldens.py", "jinja2_version": jinja2.__version__,
            "templates": templates, "cases": chat_cases(env, templates)}
    expressions = {"generator": "scripts/make_template_goldens.py", "jinja2_version": jinja2.__version__,
                   "cases": expression_cases(env)}
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, data in (("chat_templates.json", chat), ("expressions.json", expressions)):
        with open(os.path.join(OUT_DIR, name), "w", encoding="utf-8") as file:
            json.dump(data, file, ensure_ascii=False, indent=1)
            file.write("\n")
    print(f"{len(chat['cases'])} chat cases, {len(expressions['cases'])} expression cases")


if __name__ == "__main__":
    main()
