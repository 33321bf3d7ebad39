"""chaski: a ctypes binding of the chaski plugin ABI (host-sdk/include/chaski.h), standard library only.

    import chaski
    plugin = chaski.Plugin("/path/to/libchaski.so")
    with plugin.load("/path/to/model", backend="cpu") as model:
        for piece in model.generate("Once upon a time", max_tokens=32, greedy=True):
            print(piece, end="", flush=True)

The binding talks to the plugin directly: it calls chaski_plugin_entry with the ABI range it
speaks (1.0 .. 1.0), checks the table it gets back, and calls through it. Every failure raises
chaski.Error with the status name and the plugin's message.
"""
import ctypes as C
import os

ABI_MAJOR, ABI_MINOR = 1, 0


def abi_version(major, minor):
    return (major << 16) | minor


OK, NO_EVENT, END = 0, -1, -2
E_BUFFER_TOO_SMALL = 14
EVENT_TOKEN, EVENT_FINISHED = 1, 2
FINISH_NAMES = {0: None, 1: "stop", 2: "length", 3: "cancelled", 4: "error"}
TOKENIZE_ADD_SPECIAL, TOKENIZE_PARSE_SPECIAL = 1, 2
DETOKENIZE_SKIP_SPECIAL = 1
FOREVER = 0xFFFFFFFF


class Error(Exception):
    """A chaski call failed: .status is the code, .name its name, the message says why."""

    def __init__(self, status, name, message):
        super().__init__("%s (%d): %s" % (name, status, message))
        self.status, self.name, self.message = status, name, message


# ---- the structs of chaski.h (field for field, in order) ----

class RuntimeParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("backend", C.c_char_p), ("n_threads", C.c_int32),
                ("script_dir", C.c_char_p)]


PROGRESS_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_float)


class ModelParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("path", C.c_char_p), ("n_ctx", C.c_int32), ("max_jobs", C.c_int32),
                ("max_batch_tokens", C.c_int32), ("kv_page_size", C.c_int32), ("kv_pages", C.c_int32),
                ("kv_max_bytes", C.c_uint64), ("progress", PROGRESS_FN), ("progress_user_data", C.c_void_p),
                ("vocab_only", C.c_int32)]


class MemoryEstimate(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("n_params", C.c_uint64), ("weights_bytes", C.c_uint64),
                ("kv_bytes", C.c_uint64), ("activations_bytes", C.c_uint64), ("total_bytes", C.c_uint64),
                ("device_free_bytes", C.c_uint64), ("fits", C.c_int32), ("kv_pages", C.c_int32)]


class ModelInfo(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("architecture", C.c_char * 64), ("backend", C.c_char * 16),
                ("quantization", C.c_char * 32), ("dtype", C.c_char * 16), ("n_params", C.c_uint64),
                ("n_ctx_train", C.c_int32), ("n_ctx", C.c_int32), ("vocab_size", C.c_int32), ("bos_id", C.c_int32),
                ("eos_id", C.c_int32), ("n_eos", C.c_int32), ("eos_ids", C.c_int32 * 16), ("n_layers", C.c_int32),
                ("hidden_size", C.c_int32), ("n_heads", C.c_int32), ("n_kv_heads", C.c_int32),
                ("head_dim", C.c_int32), ("has_chat_template", C.c_int32)]


class ChatMessage(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("role", C.c_char_p), ("content", C.c_char_p),
                ("content_len", C.c_size_t)]


class ChatParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("add_generation_prompt", C.c_int32), ("template_name", C.c_char_p),
                ("template_script", C.c_char_p), ("template_script_len", C.c_size_t)]


class LogitBias(C.Structure):
    _fields_ = [("token", C.c_int32), ("bias", C.c_float)]


class TopLogprob(C.Structure):
    _fields_ = [("token", C.c_int32), ("logprob", C.c_float)]


class Event(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("type", C.c_uint32), ("token", C.c_int32), ("index", C.c_int32),
                ("logprob", C.c_float), ("text", C.c_void_p), ("text_len", C.c_size_t),
                ("top", C.POINTER(TopLogprob)), ("n_top", C.c_uint32), ("finish_reason", C.c_uint32),
                ("status", C.c_int32)]


EVENT_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.POINTER(Event))


class JobParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("prompt", C.c_char_p), ("prompt_len", C.c_size_t),
                ("prompt_tokens", C.POINTER(C.c_int32)), ("n_prompt_tokens", C.c_size_t),
                ("add_special", C.c_int32), ("parse_special", C.c_int32), ("max_new_tokens", C.c_int32),
                ("min_new_tokens", C.c_int32), ("seed", C.c_uint64), ("greedy", C.c_int32),
                ("temperature", C.c_float), ("top_k", C.c_int32), ("top_p", C.c_float), ("min_p", C.c_float),
                ("typical_p", C.c_float), ("repetition_penalty", C.c_float), ("presence_penalty", C.c_float),
                ("frequency_penalty", C.c_float), ("penalty_last_n", C.c_int32), ("sampler_script", C.c_char_p),
                ("sampler_script_len", C.c_size_t), ("sampler_script_name", C.c_char_p),
                ("stop_strings", C.POINTER(C.c_char_p)), ("n_stop_strings", C.c_size_t),
                ("stop_tokens", C.POINTER(C.c_int32)), ("n_stop_tokens", C.c_size_t), ("ignore_eos", C.c_int32),
                ("stop_script", C.c_char_p), ("stop_script_len", C.c_size_t),
                ("logit_bias", C.POINTER(LogitBias)), ("n_logit_bias", C.c_size_t),
                ("banned_strings", C.POINTER(C.c_char_p)), ("n_banned_strings", C.c_size_t),
                ("top_n_logprobs", C.c_int32), ("on_event", EVENT_FN), ("user_data", C.c_void_p)]


class JobStats(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("state", C.c_uint32), ("finish_reason", C.c_uint32),
                ("n_prompt_tokens", C.c_int32), ("n_generated_tokens", C.c_int32), ("queued_ms", C.c_double),
                ("prefill_ms", C.c_double), ("time_to_first_token_ms", C.c_double), ("generate_ms", C.c_double),
                ("total_ms", C.c_double), ("prefill_tokens_per_s", C.c_double),
                ("generate_tokens_per_s", C.c_double)]


class ModelStats(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("weights_bytes", C.c_uint64), ("kv_bytes", C.c_uint64),
                ("kv_page_size", C.c_int32), ("kv_pages_total", C.c_int32), ("kv_pages_free", C.c_int32),
                ("jobs_active", C.c_int32), ("jobs_queued", C.c_int32), ("jobs_finished", C.c_uint64),
                ("prompt_tokens_total", C.c_uint64), ("generated_tokens_total", C.c_uint64),
                ("steps", C.c_uint64), ("generate_tokens_per_s", C.c_double)]


class ScoreParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("window", C.c_int32), ("bos_id", C.c_int32)]


class ScoreResult(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("perplexity", C.c_double), ("total_nll", C.c_double),
                ("n_scored", C.c_int64), ("n_windows", C.c_int64)]


_p = C.c_void_p
_st = C.c_int32
_sz = C.c_size_t


class Api(C.Structure):
    _fields_ = [
        ("struct_size", C.c_uint32), ("abi_version", C.c_uint32), ("plugin_name", C.c_char_p),
        ("plugin_version", C.c_char_p),
        ("status_name", C.CFUNCTYPE(C.c_char_p, _st)),
        ("runtime_params_default", C.CFUNCTYPE(None, C.POINTER(RuntimeParams))),
        ("runtime_create", C.CFUNCTYPE(_st, C.POINTER(RuntimeParams), C.POINTER(_p), C.c_char_p, _sz)),
        ("runtime_destroy", C.CFUNCTYPE(None, _p)),
        ("runtime_last_error", C.CFUNCTYPE(_sz, _p, C.c_char_p, _sz)),
        ("device_count", C.CFUNCTYPE(_st, _p, C.POINTER(C.c_int32))),
        ("device_info", C.CFUNCTYPE(_st, _p, C.c_int32, _p)),
        ("model_params_default", C.CFUNCTYPE(None, C.POINTER(ModelParams))),
        ("model_estimate", C.CFUNCTYPE(_st, _p, C.POINTER(ModelParams), C.POINTER(MemoryEstimate))),
        ("model_load", C.CFUNCTYPE(_st, _p, C.POINTER(ModelParams), C.POINTER(_p))),
        ("model_unload", C.CFUNCTYPE(None, _p)),
        ("model_last_error", C.CFUNCTYPE(_sz, _p, C.c_char_p, _sz)),
        ("model_info", C.CFUNCTYPE(_st, _p, C.POINTER(ModelInfo))),
        ("model_chat_template", C.CFUNCTYPE(_st, _p, C.c_char_p, _sz, C.POINTER(_sz))),
        ("model_stats", C.CFUNCTYPE(_st, _p, C.POINTER(ModelStats))),
        ("tokenize", C.CFUNCTYPE(_st, _p, C.c_char_p, _sz, C.c_uint32, C.POINTER(C.c_int32), _sz, C.POINTER(_sz))),
        ("detokenize", C.CFUNCTYPE(_st, _p, C.POINTER(C.c_int32), _sz, C.c_uint32, C.c_char_p, _sz,
                                   C.POINTER(_sz))),
        ("token_to_piece", C.CFUNCTYPE(_st, _p, C.c_int32, C.c_char_p, _sz, C.POINTER(_sz))),
        ("chat_params_default", C.CFUNCTYPE(None, C.POINTER(ChatParams))),
        ("chat_apply", C.CFUNCTYPE(_st, _p, C.POINTER(ChatMessage), _sz, C.POINTER(ChatParams), C.c_char_p, _sz,
                                   C.POINTER(_sz))),
        ("job_params_default", C.CFUNCTYPE(None, C.POINTER(JobParams))),
        ("job_submit", C.CFUNCTYPE(_st, _p, C.POINTER(JobParams), C.POINTER(_p))),
        ("job_poll", C.CFUNCTYPE(_st, _p, C.POINTER(Event), C.c_uint32)),
        ("job_wait", C.CFUNCTYPE(_st, _p, C.c_uint32)),
        ("job_cancel", C.CFUNCTYPE(_st, _p)),
        ("job_release", C.CFUNCTYPE(None, _p)),
        ("job_stats", C.CFUNCTYPE(_st, _p, C.POINTER(JobStats))),
        ("job_last_error", C.CFUNCTYPE(_sz, _p, C.c_char_p, _sz)),
        ("score_params_default", C.CFUNCTYPE(None, C.POINTER(ScoreParams))),
        ("score", C.CFUNCTYPE(_st, _p, C.POINTER(C.c_int32), _sz, C.POINTER(ScoreParams), C.POINTER(ScoreResult))),
    ]


ENTRY_FN = C.CFUNCTYPE(C.POINTER(Api), C.c_uint32, C.c_uint32, C.c_char_p, C.c_size_t)


def _init(struct_type):
    s = struct_type()
    s.struct_size = C.sizeof(struct_type)
    return s


class Plugin:
    """One loaded plugin. path defaults to $CHASKI_PLUGIN."""

    def __init__(self, path=None):
        path = path or os.environ.get("CHASKI_PLUGIN")
        if not path:
            raise Error(17, "not-found", "no plugin path given (pass one or set CHASKI_PLUGIN)")
        if not os.path.exists(path):
            raise Error(17, "not-found", "plugin '%s': no such file" % path)
        try:
            self._lib = C.CDLL(os.path.abspath(path), mode=os.RTLD_LOCAL | os.RTLD_NOW)
        except OSError as e:
            raise Error(18, "not-shared-object", "plugin '%s': %s" % (path, e)) from None
        try:
            entry = ENTRY_FN(("chaski_plugin_entry", self._lib))
        except AttributeError:
            raise Error(19, "no-entry", "plugin '%s': does not export chaski_plugin_entry" % path) from None
        reason = C.create_string_buffer(512)
        api = entry(abi_version(ABI_MAJOR, 0), abi_version(ABI_MAJOR, ABI_MINOR), reason, 512)
        if not api:
            raise Error(15, "version", "plugin '%s': the binding speaks %d.0..%d.%d; the plugin refused: %s"
                        % (path, ABI_MAJOR, ABI_MAJOR, ABI_MINOR, reason.value.decode(errors="replace")))
        self.api = api.contents
        if self.api.abi_version >> 16 != ABI_MAJOR or self.api.struct_size < C.sizeof(Api):
            raise Error(15, "version", "plugin '%s': answered ABI %d.%d with a %d-byte table" % (
                path, self.api.abi_version >> 16, self.api.abi_version & 0xFFFF, self.api.struct_size))
        self.path = path

    def status_name(self, st):
        return self.api.status_name(st).decode()

    def load(self, model_dir, backend="auto", n_ctx=0, max_jobs=0, vocab_only=False, progress=None):
        """Create a runtime and load a model directory: returns a Model (a context manager)."""
        return Model(self, model_dir, backend, n_ctx, max_jobs, vocab_only, progress)


class Model:
    def __init__(self, plugin, model_dir, backend, n_ctx, max_jobs, vocab_only, progress):
        self.plugin, self.api = plugin, plugin.api
        self._rt, self._m = C.c_void_p(), C.c_void_p()
        rp = _init(RuntimeParams)
        self.api.runtime_params_default(C.byref(rp))
        rp.backend = backend.encode()
        err = C.create_string_buffer(1024)
        st = self.api.runtime_create(C.byref(rp), C.byref(self._rt), err, 1024)
        if st != OK:
            raise Error(st, plugin.status_name(st), err.value.decode(errors="replace"))
        mp = _init(ModelParams)
        self.api.model_params_default(C.byref(mp))
        mp.path = os.fsencode(model_dir)
        if n_ctx:
            mp.n_ctx = n_ctx
        if max_jobs:
            mp.max_jobs = max_jobs
        mp.vocab_only = 1 if vocab_only else 0
        self._progress = PROGRESS_FN(lambda ud, frac: 1 if progress(frac) else 0) if progress else PROGRESS_FN()
        mp.progress = self._progress
        st = self.api.model_load(self._rt, C.byref(mp), C.byref(self._m))
        if st != OK:
            msg = self._runtime_error()
            self.api.runtime_destroy(self._rt)
            self._rt = None
            raise Error(st, plugin.status_name(st), msg)
        self._jobs = set()

    # -- lifetime --
    def unload(self):
        """Cancel running jobs, unload the model, destroy the runtime (joins its threads)."""
        for job in list(self._jobs):
            job.release()
        if self._rt:
            self.api.runtime_destroy(self._rt)
        self._rt = self._m = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.unload()

    def __del__(self):
        try:
            self.unload()
        except Exception:
            pass

    # -- errors --
    def _runtime_error(self):
        buf = C.create_string_buffer(2048)
        self.api.runtime_last_error(self._rt, buf, 2048)
        return buf.value.decode(errors="replace")

    def _check(self, st):
        if st != OK:
            buf = C.create_string_buffer(2048)
            self.api.model_last_error(self._m, buf, 2048)
            raise Error(st, self.plugin.status_name(st), buf.value.decode(errors="replace"))

    def _live(self):
        if not self._m:
            raise Error(16, "state", "the model is unloaded")

    # -- information --
    def info(self):
        self._live()
        mi = _init(ModelInfo)
        self._check(self.api.model_info(self._m, C.byref(mi)))
        d = {name: getattr(mi, name) for name, _ in ModelInfo._fields_ if name not in ("struct_size", "eos_ids")}
        for k in ("architecture", "backend", "quantization", "dtype"):
            d[k] = d[k].decode()
        d["eos_ids"] = list(mi.eos_ids[:mi.n_eos])
        return d

    def stats(self):
        self._live()
        s = _init(ModelStats)
        self._check(self.api.model_stats(self._m, C.byref(s)))
        return {name: getattr(s, name) for name, _ in ModelStats._fields_ if name != "struct_size"}

    # -- text --
    def tokenize(self, text, add_special=True, parse_special=False):
        self._live()
        data = text.encode() if isinstance(text, str) else bytes(text)
        flags = (TOKENIZE_ADD_SPECIAL if add_special else 0) | (TOKENIZE_PARSE_SPECIAL if parse_special else 0)
        n = C.c_size_t()
        self._check(self.api.tokenize(self._m, data, len(data), flags, None, 0, C.byref(n)))
        ids = (C.c_int32 * max(n.value, 1))()
        self._check(self.api.tokenize(self._m, data, len(data), flags, ids, n.value, C.byref(n)))
        return list(ids[:n.value])

    def detokenize(self, ids, skip_special=False):
        self._live()
        arr = (C.c_int32 * max(len(ids), 1))(*ids)
        flags = DETOKENIZE_SKIP_SPECIAL if skip_special else 0
        n = C.c_size_t()
        self._check(self.api.detokenize(self._m, arr, len(ids), flags, None, 0, C.byref(n)))
        buf = C.create_string_buffer(n.value + 1)
        self._check(self.api.detokenize(self._m, arr, len(ids), flags, buf, n.value + 1, C.byref(n)))
        return buf.raw[:n.value].decode(errors="replace")

    def chat_template(self):
        """The model's own HF chat_template text, or None."""
        self._live()
        n = C.c_size_t()
        self._check(self.api.model_chat_template(self._m, None, 0, C.byref(n)))
        if n.value == 0:
            return None
        buf = C.create_string_buffer(n.value + 1)
        self._check(self.api.model_chat_template(self._m, buf, n.value + 1, C.byref(n)))
        return buf.raw[:n.value].decode(errors="replace")

    def apply_chat_template(self, messages, add_generation_prompt=True, template=None, template_script=None):
        """Render [{"role": ..., "content": ...}] to the exact prompt text."""
        self._live()
        keep = []
        msgs = (ChatMessage * max(len(messages), 1))()
        for i, m in enumerate(messages):
            role, content = m["role"].encode(), m["content"].encode()
            keep += [role, content]
            msgs[i].struct_size = C.sizeof(ChatMessage)
            msgs[i].role, msgs[i].content, msgs[i].content_len = role, content, len(content)
        cp = _init(ChatParams)
        self.api.chat_params_default(C.byref(cp))
        cp.add_generation_prompt = 1 if add_generation_prompt else 0
        if template:
            cp.template_name = template.encode()
        if template_script:
            script = template_script.encode()
            keep.append(script)
            cp.template_script, cp.template_script_len = script, len(script)
        n = C.c_size_t()
        self._check(self.api.chat_apply(self._m, msgs, len(messages), C.byref(cp), None, 0, C.byref(n)))
        buf = C.create_string_buffer(n.value + 1)
        self._check(self.api.chat_apply(self._m, msgs, len(messages), C.byref(cp), buf, n.value + 1, C.byref(n)))
        return buf.raw[:n.value].decode(errors="replace")

    # -- generation --
    def submit(self, prompt, max_tokens=128, greedy=False, temperature=None, top_k=None, top_p=None, min_p=None,
               seed=0, stop=(), stop_tokens=(), ignore_eos=False, sampler_script=None, top_n_logprobs=0,
               add_special=True, parse_special=False):
        """Start a job; prompt is text or a list of ids. Returns a Job to iterate for events."""
        self._live()
        jp = _init(JobParams)
        self.api.job_params_default(C.byref(jp))
        keep = []
        if isinstance(prompt, str):
            data = prompt.encode()
            keep.append(data)
            jp.prompt, jp.prompt_len = data, len(data)
        else:
            ids = (C.c_int32 * len(prompt))(*prompt)
            keep.append(ids)
            jp.prompt_tokens, jp.n_prompt_tokens = ids, len(prompt)
        jp.add_special, jp.parse_special = int(add_special), int(parse_special)
        jp.max_new_tokens, jp.seed, jp.greedy, jp.ignore_eos = max_tokens, seed, int(greedy), int(ignore_eos)
        for name, v in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p), ("min_p", min_p)):
            if v is not None:
                setattr(jp, name, v)
        if stop:
            arr = (C.c_char_p * len(stop))(*[s.encode() for s in stop])
            keep.append(arr)
            jp.stop_strings, jp.n_stop_strings = arr, len(stop)
        if stop_tokens:
            arr = (C.c_int32 * len(stop_tokens))(*stop_tokens)
            keep.append(arr)
            jp.stop_tokens, jp.n_stop_tokens = arr, len(stop_tokens)
        if sampler_script:
            script = sampler_script.encode()
            keep.append(script)
            jp.sampler_script, jp.sampler_script_len = script, len(script)
        jp.top_n_logprobs = top_n_logprobs
        handle = C.c_void_p()
        self._check(self.api.job_submit(self._m, C.byref(jp), C.byref(handle)))
        job = Job(self, handle)
        self._jobs.add(job)
        return job

    def generate(self, prompt, **kw):
        """Stream the generated text: yields each complete piece as it arrives."""
        job = self.submit(prompt, **kw)
        try:
            for ev in job:
                if ev["text"]:
                    yield ev["text"]
        finally:
            job.release()

    def perplexity(self, ids, window=256):
        """Perplexity of ids in windows of `window` tokens with BOS prepended (see chaski.h score)."""
        self._live()
        arr = (C.c_int32 * max(len(ids), 1))(*ids)
        sp = _init(ScoreParams)
        self.api.score_params_default(C.byref(sp))
        sp.window = window
        r = _init(ScoreResult)
        self._check(self.api.score(self._m, arr, len(ids), C.byref(sp), C.byref(r)))
        return {"perplexity": r.perplexity, "total_nll": r.total_nll, "tokens": r.n_scored, "windows": r.n_windows}


class Job:
    """A running job. Iterate it for event dicts: type ("token"/"finished"), token, text, logprob, top,
    finish_reason. Release it (or let Model.unload do it)."""

    def __init__(self, model, handle):
        self.model, self.api, self._h = model, model.api, handle
        self.finish_reason = None

    def poll(self, timeout_ms=FOREVER):
        """The next event, or None on timeout; raises StopIteration-like None after the end."""
        if not self._h:
            return None
        ev = _init(Event)
        st = self.api.job_poll(self._h, C.byref(ev), timeout_ms)
        if st in (NO_EVENT, END):
            return None
        self.model._check(st)
        text = C.string_at(ev.text, ev.text_len).decode(errors="replace") if ev.text_len else ""
        d = {"type": "token" if ev.type == EVENT_TOKEN else "finished", "token": ev.token, "index": ev.index,
             "text": text, "logprob": ev.logprob,
             "top": [(ev.top[i].token, ev.top[i].logprob) for i in range(ev.n_top)],
             "finish_reason": FINISH_NAMES.get(ev.finish_reason)}
        if ev.type == EVENT_FINISHED:
            self.finish_reason = d["finish_reason"]
            d["status"] = ev.status
            if ev.status != OK:
                buf = C.create_string_buffer(2048)
                self.api.job_last_error(self._h, buf, 2048)
                d["error"] = buf.value.decode(errors="replace")
        return d

    def __iter__(self):
        while True:
            ev = self.poll()
            if ev is None:
                return
            yield ev
            if ev["type"] == "finished":
                return

    def cancel(self):
        if self._h:
            self.api.job_cancel(self._h)

    def stats(self):
        s = _init(JobStats)
        self.model._check(self.api.job_stats(self._h, C.byref(s)))
        d = {name: getattr(s, name) for name, _ in JobStats._fields_ if name != "struct_size"}
        d["finish_reason"] = FINISH_NAMES.get(s.finish_reason)
        return d

    def release(self):
        if self._h:
            self.api.job_release(self._h)
            self._h = None
            self.model._jobs.discard(self)
