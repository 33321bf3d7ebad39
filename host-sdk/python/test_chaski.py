"""Tests of the ctypes binding against the real plugin and a tiny random-weight model.

Environment: CHASKI_PLUGIN (libchaski.so), CHASKI_TEST_MAKE_MODEL (the make_tiny_model tool),
CHASKI_TEST_TOKDIR (third_party/tokenizers/llama2)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaski  # noqa: E402


class BindingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="chaski-py-")
        cls.model_dir = os.path.join(cls.tmp, "m")
        subprocess.run([os.environ["CHASKI_TEST_MAKE_MODEL"], cls.model_dir, os.environ["CHASKI_TEST_TOKDIR"], "11"],
                       check=True)
        cls.plugin = chaski.Plugin(os.environ["CHASKI_PLUGIN"])
        cls.model = cls.plugin.load(cls.model_dir, backend="cpu", n_ctx=256)

    @classmethod
    def tearDownClass(cls):
        cls.model.unload()
        shutil.rmtree(cls.tmp)

    def test_info_describes_the_model(self):
        info = self.model.info()
        self.assertEqual(info["architecture"], "LlamaForCausalLM")
        self.assertEqual(info["vocab_size"], 32000)
        self.assertEqual(info["bos_id"], 1)
        self.assertEqual(info["n_ctx"], 256)

    def test_tokenize_round_trips(self):
        ids = self.model.tokenize("Hello from Python")
        self.assertEqual(ids[0], 1)
        self.assertEqual(self.model.detokenize(ids, skip_special=True), "Hello from Python")
        self.assertNotIn(1, self.model.tokenize("Hello", add_special=False))

    def test_streaming_greedy_generation_is_deterministic(self):
        a = list(self.model.generate("Once upon a time", max_tokens=10, greedy=True, ignore_eos=True))
        b = "".join(self.model.generate("Once upon a time", max_tokens=10, greedy=True, ignore_eos=True))
        self.assertEqual("".join(a), b)
        job = self.model.submit("Once upon a time", max_tokens=10, greedy=True, ignore_eos=True, top_n_logprobs=3)
        events = list(job)
        job.release()
        tokens = [e for e in events if e["type"] == "token"]
        self.assertEqual(len(tokens), 10)
        self.assertEqual(events[-1]["finish_reason"], "length")
        self.assertEqual(len(tokens[0]["top"]), 3)
        self.assertEqual(tokens[0]["top"][0][0], tokens[0]["token"])  # greedy picks the most likely
        self.assertEqual("".join(e["text"] for e in events), b)

    def test_cancel_stops_a_job(self):
        job = self.model.submit("A very long story", max_tokens=200, ignore_eos=True)
        first = job.poll()
        self.assertIsNotNone(first)
        job.cancel()
        last = None
        for ev in job:
            last = ev
        self.assertEqual(job.finish_reason, "cancelled")
        self.assertLess(job.stats()["n_generated_tokens"], 200)
        job.release()
        self.assertEqual(self.model.stats()["jobs_active"], 0)
        self.assertIsNotNone(last)

    def test_chat_template_renders_through_a_named_template(self):
        self.assertIsNone(self.model.chat_template())  # the llama2 tokenizer files carry none
        text = self.model.apply_chat_template([{"role": "user", "content": "Hi"}], template="llama2")
        self.assertIn("Hi", text)
        self.assertIn("[INST]", text)

    def test_errors_are_typed(self):
        with self.assertRaises(chaski.Error) as cm:
            self.model.submit(list(range(100, 400)), max_tokens=4)
        self.assertEqual(cm.exception.name, "context-overflow")
        with self.assertRaises(chaski.Error) as cm:
            chaski.Plugin("/nonexistent/libchaski.so")
        self.assertEqual(cm.exception.name, "not-found")

    def test_unload_then_use_is_an_error(self):
        m = self.plugin.load(self.model_dir, backend="cpu", n_ctx=64, vocab_only=True)
        self.assertEqual(m.tokenize("x", add_special=False), m.tokenize("x", add_special=False))
        m.unload()
        with self.assertRaises(chaski.Error):
            m.tokenize("x")


if __name__ == "__main__":
    unittest.main()
