"""End-to-end tests of the `chaski` command (built only on the host SDK) with a tiny model.

Environment: CHASKI_BIN, CHASKI_PLUGIN, CHASKI_TEST_MAKE_MODEL, CHASKI_TEST_TOKDIR; CHASKI_TEST_PPL_MODEL
(optional: the bundled model directory, whose reference.json perplexity must be reproduced)."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

BIN = os.environ["CHASKI_BIN"]
PLUGIN = os.environ["CHASKI_PLUGIN"]


def chaski(*args, stdin=None, check=True):
    p = subprocess.run([BIN, *args], input=stdin, capture_output=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError("chaski %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.decode()))
    return p


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="chaski-cli-")
        cls.model = os.path.join(cls.tmp, "m")
        subprocess.run([os.environ["CHASKI_TEST_MAKE_MODEL"], cls.model, os.environ["CHASKI_TEST_TOKDIR"], "5"],
                       check=True)
        cls.common = ["--model", cls.model, "--plugin", PLUGIN, "--backend", "cpu"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_run_prints_only_the_generated_text_and_json_agrees(self):
        j = json.loads(chaski("run", *self.common, "--greedy", "--max-tokens", "6", "--prompt", "Hello", "--json")
                       .stdout)
        self.assertIn(j["finish_reason"], ("length", "stop"))
        self.assertTrue(1 <= len(j["tokens"]) <= 6)
        self.assertEqual(j["prompt_tokens"], 2)  # BOS + "Hello"
        self.assertIn("time_to_first_token_ms", j["timings"])
        plain = chaski("run", *self.common, "--greedy", "--max-tokens", "6", "--prompt", "Hello")
        self.assertEqual(plain.stdout.decode(), j["text"])
        self.assertIn(b"tokens/s", plain.stderr)

    def test_tokenize_and_detokenize_round_trip(self):
        ids = json.loads(chaski("tokenize", *self.common, stdin="Hello world".encode()).stdout)
        self.assertEqual(ids[0], 1)
        no_bos = json.loads(chaski("tokenize", *self.common, "--no-special", stdin=b"Hello world").stdout)
        self.assertEqual(no_bos, ids[1:])
        text = chaski("detokenize", *self.common, stdin=json.dumps(no_bos).encode()).stdout
        self.assertEqual(text, b"Hello world")

    def test_template_prints_the_prompt_exactly(self):
        msgs = os.path.join(self.tmp, "msgs.json")
        with open(msgs, "w") as f:
            json.dump([{"role": "user", "content": "Hi \u00e9"}], f)
        out = chaski("template", *self.common, "--messages", msgs, "--template", "llama2").stdout.decode()
        self.assertIn("[INST] Hi \u00e9 [/INST]", out)
        self.assertFalse(out.endswith("\n"))

    def test_bad_plugin_and_missing_model_are_clear_errors(self):
        p = chaski("run", "--model", self.model, "--plugin", "/nonexistent/libchaski.so", "--prompt", "x",
                   check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"/nonexistent/libchaski.so", p.stderr)
        self.assertIn(b"no such file", p.stderr)
        p = chaski("run", "--model", os.path.join(self.tmp, "nothing"), "--plugin", PLUGIN, "--prompt", "x",
                   check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"nothing", p.stderr)

    def test_context_overflow_is_reported(self):
        p = chaski("run", *self.common, "--ctx", "8", "--prompt", "one two three four five six seven eight nine",
                   check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"context", p.stderr)

    def test_info_reports_memory(self):
        j = json.loads(chaski("info", *self.common, "--json").stdout)
        self.assertEqual(j["architecture"], "LlamaForCausalLM")
        self.assertGreater(j["memory"]["weights_bytes"], 4 * 1000000)
        self.assertEqual(j["memory"]["total_bytes"], j["memory"]["weights_bytes"] + j["memory"]["kv_bytes"] +
                         j["memory"]["activations_bytes"])

    def test_whole_file_perplexity_equals_one_bos_window_over_the_same_tokens(self):
        path = os.path.join(self.tmp, "short.txt")
        with open(path, "w") as f:
            f.write("It was the best of times, it was the worst of times.")
        ids = json.loads(chaski("tokenize", *self.common, "--no-special", stdin=open(path, "rb").read()).stdout)
        whole = json.loads(chaski("perplexity", *self.common, "--file", path, "--whole", "--json").stdout)
        win = json.loads(chaski("perplexity", *self.common, "--file", path, "--window", str(len(ids)), "--json")
                         .stdout)
        self.assertEqual(whole["tokens"], len(ids))  # every token after the BOS
        self.assertEqual(win["tokens"], len(ids))
        self.assertLess(abs(whole["perplexity"] - win["perplexity"]) / win["perplexity"], 1e-9)
        self.assertGreater(whole["perplexity"], 1.0)

    @unittest.skipUnless(os.environ.get("CHASKI_TEST_PPL_MODEL"), "no bundled model")
    def test_perplexity_matches_the_reference(self):
        d = os.environ["CHASKI_TEST_PPL_MODEL"]
        with open(os.path.join(d, "reference.json")) as f:
            ref = json.load(f)["perplexity"]
        with open(os.path.join(d, ref["eval_text_file"]), encoding="utf-8") as f:
            text = f.read()[:ref["chars"]]
        path = os.path.join(self.tmp, "heldout.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        j = json.loads(chaski("perplexity", "--model", d, "--plugin", PLUGIN, "--backend", "cpu", "--file", path,
                              "--window", str(ref["window"]), "--json").stdout)
        self.assertEqual(j["tokens"], ref["tokens"])
        self.assertEqual(j["windows"], ref["windows"])
        self.assertLess(abs(j["perplexity"] - ref["ppl"]) / ref["ppl"], 1e-3)


if __name__ == "__main__":
    unittest.main()
