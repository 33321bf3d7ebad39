#!/usr/bin/env node
// render_jinja.cjs: the CI-side reference for template parity.
//
// Renders the conversations of tests/lua/fixtures/templates.json with each
// tokenizer's own chat_template (third_party/tokenizers/<name>/tokenizer_config.json)
// through @huggingface/jinja, and writes a file in the same format as that fixture
// ("renderer": "@huggingface/jinja"), which test_templates then compares with our
// Lua templates byte for byte. The transformers fixture stays the primary reference;
// this one needs no GPU machine and no Python, so it can be regenerated anywhere.
//
// usage: node render_jinja.cjs ROOT FIXTURE.json OUT.json
// exit 77 (skipped) when the package or the tokenizer files are absent.
"use strict";
const fs = require("fs");
const path = require("path");

function main(argv) {
  if (argv.length !== 3) {
    process.stderr.write("usage: render_jinja.cjs ROOT FIXTURE.json OUT.json\n");
    return 2;
  }
  const [rootArg, fixturePath, outPath] = argv;
  const root = path.resolve(rootArg);
  const pkg = path.join(root, "third_party", "npm", "node_modules", "@huggingface", "jinja");
  let Template, version;
  try {
    ({ Template } = require(pkg));
    version = JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8")).version;
  } catch (e) {
    process.stderr.write(`render_jinja: @huggingface/jinja absent (${pkg}): run tools/install-deps.sh (skipped)\n`);
    return 77;
  }
  const fixture = JSON.parse(fs.readFileSync(fixturePath, "utf8"));

  // the conversations, in fixture order, by name
  const conversations = new Map();
  for (const c of fixture.cases)
    if (!conversations.has(c.conversation)) conversations.set(c.conversation, c.messages);

  const tokenStr = (v) => (v && typeof v === "object" ? v.content : v);
  const out = { renderer: "@huggingface/jinja", renderer_version: version, tokenizers: {}, cases: [] };
  for (const name of Object.keys(fixture.tokenizers)) {
    const cfgPath = path.join(root, "third_party", "tokenizers", name, "tokenizer_config.json");
    if (!fs.existsSync(cfgPath)) {
      process.stderr.write(`render_jinja: ${cfgPath} absent: run tools/install-deps.sh (skipped)\n`);
      return 77;
    }
    const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
    if (typeof cfg.chat_template !== "string") continue;
    const info = { chat_template: cfg.chat_template, bos_token: tokenStr(cfg.bos_token) ?? null,
                   eos_token: tokenStr(cfg.eos_token) ?? null };
    out.tokenizers[name] = info;
    const tmpl = new Template(cfg.chat_template);
    for (const [conv, messages] of conversations) {
      for (const agp of [false, true]) {
        let text;
        try {
          text = tmpl.render({ messages, add_generation_prompt: agp, bos_token: info.bos_token,
                               eos_token: info.eos_token });  // the package brings raise_exception
        } catch (e) {  // a template may refuse a conversation, as in the Python generator
          process.stderr.write(`render_jinja: ${name}/${conv}: ${e.message}\n`);
          continue;
        }
        out.cases.push({ tokenizer: name, conversation: conv, add_generation_prompt: agp, messages,
                         expected: text });
      }
    }
  }
  fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + "\n");
  process.stdout.write(`render_jinja: ${out.cases.length} cases (@huggingface/jinja ${version}) -> ${outPath}\n`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
