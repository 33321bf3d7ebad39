#!/bin/sh
# run_jinja_parity.sh ROOT FIXTURE OUT TEST_TEMPLATES: render the fixture's conversations
# with each tokenizer's chat_template through @huggingface/jinja (render_jinja.cjs),
# then compare our Lua templates with that rendering (test_templates). Exit 77
# (skipped) without node, the package or the tokenizer files.
root=$1 fixture=$2 out=$3 test_templates=$4
command -v node >/dev/null 2>&1 || { echo "run_jinja_parity: node absent (skipped)"; exit 77; }
node "$root/tests/lua/render_jinja.cjs" "$root" "$fixture" "$out" || exit $?
exec "$test_templates" "$out"
