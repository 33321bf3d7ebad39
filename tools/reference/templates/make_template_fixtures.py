#!/usr/bin/env python3
"""Render reference chat prompts for the Lua template parity test.

For each tokenizer under third_party/tokenizers/{llama2,llama3,qwen3} that has a
`chat_template` in its tokenizer_config.json, render a fixed set of conversations
with Hugging Face transformers (`AutoTokenizer.from_pretrained(dir)
.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`) and
write tests/lua/fixtures/templates.json, which tests/lua/test_templates.c compares
with our scripts/templates/*.lua byte for byte.

Usage (repository root; no network needed):
    python3 tools/reference/templates/make_template_fixtures.py
Options:
    --renderer transformers   (default) the reference; needs `transformers`
    --renderer jinja2         fallback without transformers: jinja2 with the same
                              environment transformers uses (trim_blocks,
                              lstrip_blocks, loopcontrols, raise_exception, tojson)
    --out PATH                output file (default tests/lua/fixtures/templates.json)
"""
import argparse
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TOKENIZERS = ["llama2", "llama3", "llama3_1", "qwen3", "gemma3", "deepseek_v3"]

# Each conversation is rendered with add_generation_prompt False and True.
CONVERSATIONS = {
    "user_only": [
        {"role": "user", "content": "Hello!"},
    ],
    "system_user": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "multi_turn": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    "system_multi_turn": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one."},
        {"role": "assistant", "content": "Red."},
        {"role": "user", "content": "And one more."},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "Say yes."},
        {"role": "assistant", "content": "Yes."},
    ],
    "spaces_and_newlines": [
        {"role": "system", "content": "  leading and trailing spaces  "},
        {"role": "user", "content": "\n\nnewlines around\n\n"},
        {"role": "assistant", "content": " \t mixed whitespace \n "},
        {"role": "user", "content": "inner  double  spaces\nand\ttabs"},
    ],
    "unicode": [
        {"role": "system", "content": "Réponds en français. 日本語もOK。"},
        {"role": "user", "content": "Ça va? 🙂 — «citation» Ω≈ç√"},
        {"role": "assistant", "content": "Très bien 👍 ありがとう"},
        {"role": "user", "content": "Привет, мир! مرحبا"},
    ],
    "empty_content": [
        {"role": "user", "content": ""},
    ],
    "markup_in_content": [
        {"role": "user", "content": "<|im_start|>not a real tag {{ x }} {% y %} [INST] <<SYS>>"},
    ],
    "long_multi_turn": [
        {"role": "system", "content": "System prompt\nwith two lines."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
        {"role": "assistant", "content": "four"},
        {"role": "user", "content": "five"},
        {"role": "assistant", "content": "six"},
        {"role": "user", "content": "seven"},
    ],
    "think_in_assistant": [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "<think>\nreasoning\n</think>\n\nA1"},
        {"role": "user", "content": "Q2"},
    ],
    "quotes_and_backslashes": [
        {"role": "user", "content": "He said \"hi\" and 'bye' \\ path\\to\\file"},
    ],
}


def load_config(name):
    path = os.path.join(ROOT, "third_party", "tokenizers", name, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def token_str(v):
    if isinstance(v, dict):  # AddedToken serialised as a dict
        return v.get("content")
    return v


def make_jinja_renderer(cfg):
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent,
                          separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    tmpl = env.from_string(cfg["chat_template"])
    special = {k: token_str(cfg.get(k)) for k in
               ("bos_token", "eos_token", "unk_token", "pad_token")}

    def render(messages, add_generation_prompt):
        return tmpl.render(messages=messages, add_generation_prompt=add_generation_prompt,
                           **special)
    return render


def make_transformers_renderer(name):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "third_party", "tokenizers", name))

    def render(messages, add_generation_prompt):
        return tok.apply_chat_template(messages, tokenize=False,
                                       add_generation_prompt=add_generation_prompt)
    return render


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--renderer", choices=["transformers", "jinja2"], default="transformers")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "lua", "fixtures", "templates.json"))
    args = ap.parse_args()

    renderer_version = None
    if args.renderer == "transformers":
        import transformers
        renderer_version = transformers.__version__
    else:
        import jinja2
        renderer_version = jinja2.__version__

    out = {"renderer": args.renderer, "renderer_version": renderer_version,
           "tokenizers": {}, "cases": []}
    for name in TOKENIZERS:
        cfg = load_config(name)
        tmpl = cfg.get("chat_template")
        if not isinstance(tmpl, str):
            print(f"make_template_fixtures: {name}: no string chat_template, skipped",
                  file=sys.stderr)
            continue
        out["tokenizers"][name] = {
            "chat_template": tmpl,
            "bos_token": token_str(cfg.get("bos_token")),
            "eos_token": token_str(cfg.get("eos_token")),
        }
        render = (make_transformers_renderer(name) if args.renderer == "transformers"
                  else make_jinja_renderer(cfg))
        for conv_name, messages in CONVERSATIONS.items():
            for agp in (False, True):
                try:
                    text = render(messages, agp)
                except Exception as e:  # a template may refuse a conversation
                    print(f"make_template_fixtures: {name}/{conv_name}: {e}", file=sys.stderr)
                    continue
                out["cases"].append({"tokenizer": name, "conversation": conv_name,
                                     "add_generation_prompt": agp,
                                     "messages": messages, "expected": text})
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"make_template_fixtures: wrote {len(out['cases'])} cases to {args.out}")


if __name__ == "__main__":
    main()
