#!/usr/bin/env python3
"""The tokenizer parity corpus: tests/tok/fixtures/corpus.bin (>= 1 MB of text).

Deterministic: a seeded random.Random, material read from the repository at one fixed
commit (git show <commit>:<path>, so later edits of those files change nothing) and the
snippets written out below. No network. Run here (needs git), commit the output:

    python3 tools/reference/tokenizer/make_tok_corpus.py --out tests/tok/fixtures/corpus.bin

The corpus is a list of cases, in this order:
  1. tools/reference/tokenizer/strings.json (hand-written edge cases);
  2. seeded random strings over a mixed alphabet (random_strings below);
  3. mixed cases of a few hundred bytes: each joins 1-4 segments drawn from English
     prose, code (C, CUDA, Python, Lua, shell, CMake, JavaScript, Rust, Go, SQL, HTML,
     Java), JSON, numbers, CJK, Japanese, Korean, Arabic, Hebrew, Devanagari, Cyrillic,
     Greek, Thai, emoji (ZWJ sequences, skin tones, flags, keycaps), combining
     characters, whitespace runs (spaces, tabs, CR/LF, NBSP, zero-width, U+3000...)
     and literal special-token strings of the six reference tokenizers, until the
     total passes --min-bytes.

Format of corpus.bin (little-endian):
  b"CKTOKCORPUS1\\n", u32 case count, then per case u32 byte length + UTF-8 bytes.
Also importable: read_corpus(path) -> list of str.
"""
import argparse
import hashlib
import json
import os
import random
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
MAGIC = b"CKTOKCORPUS1\n"

# Material from the repository, read at this commit (git show), never from the tree.
SOURCE_COMMIT = "11badcb6054235fe33178852c439c018d0c40f3b"
PROSE_FILES = ["models/chaski-pd-16m/heldout_eval.txt", "README.md", "docs/kernels.md", "docs/models.md",
               "docs/scripting.md", "docs/tokenizer.md", "tools/train/README.md"]
CODE_FILES = ["engine/tok/tok_encode.c", "engine/tok/tok_load.c", "engine/tok/tok.h", "kernels/cuda/sample.cu",
              "kernels/cuda/attention_decode.cu", "kernels/cuda/linear.cu", "tools/train/train.py",
              "tools/reference/make_fixtures.py", "engine/tok/tok_regex.c",
              "scripts/templates/qwen3.lua", "tools/device/gpu-suite.sh", "tests/abi/CMakeLists.txt",
              "tools/install-deps.sh", "Makefile"]
JSON_FILES = ["models/chaski-pd-16m/config.json", "models/chaski-pd-16m/tokenizer_config.json",
              "models/chaski-pd-16m/special_tokens_map.json", "models/chaski-pd-16m/generation_config.json"]

# ---- the seeded random strings (section 2), unchanged from the first fixtures -------------
ALPHABET = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" " * 12) + ["\t", "\n", "\r\n", "\r", "\u00a0", "\u200b", "\u3000", "\u2009", "\u200d", "\ufeff"]
    + list(".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`")
    + ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL"]
    + list("éèêëàâäôöûüçñßøåæœÉÀÇÑ") + ["\u0301", "\u0300", "\u0308", "\u0327", "\u0303"]
    + list("αβγδεζηθλμπσωΑΒΓΔΩ") + list("абвгдежзийклмнопрстуфхцчшщъыьэюяЖЩЯ")
    + list("مرحبابالعالم") + list("שלוםעולם") + list("नमस्तेदुनिया") + list("你好世界中文字测试的一是")
    + list("こんにちはカタカナ") + list("안녕하세요세계한국어")
    + ["😀", "👍", "🏽", "👨", "👩", "👧", "❤", "\ufe0f", "🇺", "🇸", "🌍", "🤖", "✓"]
    + list("٠١٢٣٤٥٦٧٨٩") + list("０１２３ＡＢＣ") + ["ﬁ", "①", "½", "™", "Ⅻ", "\x00", "\x7f", "\ue000", "\U0010ffff"]
)

SPECIAL_SNIPPETS = ["<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>",
                    "<|endoftext|>", "<think>", "</think>", "<bos>", "<eos>", "<0x41>"]


def random_strings(seed, count):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.choice([1, 2, 3, 5, 8, 13, 21, 34, 55, 89])
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.03:
                parts.append(rng.choice(SPECIAL_SNIPPETS))
            elif r < 0.25:
                parts.append(rng.choice(ALPHABET) * rng.randint(2, 6))
            else:
                parts.append(rng.choice(ALPHABET))
        out.append("".join(parts))
    return out


# ---- written-out snippets ------------------------------------------------------------------
LANG = {
    "zh": ["今天天气很好，我们去公园散步吧。", "机器学习模型需要大量的数据来训练。", "这个分词器必须和参考实现完全一致。",
           "北京是中华人民共和国的首都，有三千多年的历史。", "他说：“我明天再来。”然后就走了。", "请把文件保存在服务器上，并检查日志。",
           "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。", "数据库连接失败，错误代码为五零三。", "繁體中文與簡體中文的差異在於字形。"],
    "ja": ["今日は良い天気ですね。散歩に行きましょう。", "東京タワーの高さは三百三十三メートルです。", "カタカナとひらがなと漢字を混ぜて書きます。",
           "このプログラムはコンピューターで動作します。", "吾輩は猫である。名前はまだ無い。", "ｶﾀｶﾅの半角文字もあります。"],
    "ko": ["안녕하세요, 만나서 반갑습니다.", "오늘은 날씨가 정말 좋네요. 산책하러 갈까요?", "토크나이저는 참조 구현과 똑같아야 합니다.",
           "서울특별시는 대한민국의 수도입니다.", "한글은 세종대왕이 만든 문자입니다.", "프로그램을 실행하려면 명령어를 입력하세요."],
    "ar": ["مرحبا بالعالم، كيف حالك اليوم؟", "اللغة العربية تكتب من اليمين إلى اليسار.", "يجب أن يكون المحلل مطابقا للتنفيذ المرجعي.",
           "القاهرة هي عاصمة جمهورية مصر العربية.", "السلام عليكم ورحمة الله وبركاته.", "رقم الهاتف ٠١٢٣٤٥٦٧٨٩ والسعر ١٥٠ دينار."],
    "he": ["שלום עולם, מה שלומך היום?", "העברית נכתבת מימין לשמאל.", "ירושלים היא עיר עתיקה מאוד."],
    "hi": ["नमस्ते दुनिया, आप कैसे हैं?", "हिंदी भारत की राजभाषा है।", "यह टोकनाइज़र संदर्भ कार्यान्वयन के समान होना चाहिए।",
           "दिल्ली भारत की राजधानी है और यहाँ बहुत से लोग रहते हैं।", "क्षत्रिय, ज्ञान, श्रृंगार, द्वार, स्त्री।", "संख्या १२३४५ और ६७८९०।"],
    "ru": ["Привет, мир! Как у тебя дела?", "Москва — столица Российской Федерации.", "Токенизатор должен совпадать с эталонной реализацией.",
           "Съешь же ещё этих мягких французских булок, да выпей чаю.", "В чащах юга жил бы цитрус? Да, но фальшивый экземпляр!"],
    "uk": ["Їжак їсть ґрунт і п'є воду.", "Київ — столиця України.", "Слава Україні! Героям слава!"],
    "el": ["Γειά σου κόσμε! Τι κάνεις;", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.", "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
           "Ο αλγόριθμος πρέπει να είναι ακριβής: ΑΒΓΔΕΖΗΘ αβγδεζηθ ς."],
    "th": ["สวัสดีชาวโลก วันนี้อากาศดีมาก", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ"],
    "vi": ["Xin chào thế giới! Tiếng Việt có nhiều dấu thanh.", "Hà Nội là thủ đô của nước Cộng hòa Xã hội chủ nghĩa Việt Nam."],
    "de": ["Größenordnung, Straße, Übermäßig, Fußgängerübergänge.", "Der schnelle braune Fuchs springt über den faulen Hund."],
    "fr": ["L'été dernier, nous sommes allés à la plage près de Nice.", "Ça coûte 12,50 € — c'est très cher, n'est-ce pas ?"],
    "tr": ["İstanbul'da ılık bir akşam; ığdır, şişe, çiçek, Ğ ğ İ ı."],
    "es": ["¿Dónde está la biblioteca? ¡Allí, señor!", "El niño comió piña y jalapeños."],
}

CODE_SNIPPETS = [
    # JavaScript
    "function fib(n) {\n  if (n < 2) return n;\n  return fib(n - 1) + fib(n - 2);\n}\nconsole.log(`fib(10) = ${fib(10)}`);\n",
    "const users = await fetch('/api/users?limit=10').then(r => r.json());\nusers.forEach(({id, name}) => console.log(id, name));\n",
    "export default class Queue {\n\t#items = [];\n\tpush(x) { this.#items.push(x); return this; }\n\tget size() { return this.#items.length; }\n}\n",
    # Rust
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "impl<'a, T: Clone + Send> Iterator for Chunks<'a, T> {\n    type Item = &'a [T];\n    fn next(&mut self) -> Option<Self::Item> { None }\n}\n",
    "#[derive(Debug, Clone, PartialEq)]\npub enum Token { Ident(String), Number(f64), LParen, RParen }\n",
    # Go
    "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tif len(os.Args) < 2 {\n\t\tfmt.Fprintln(os.Stderr, \"usage: prog FILE\")\n\t\tos.Exit(2)\n\t}\n}\n",
    "func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {\n\tw.WriteHeader(http.StatusOK)\n\t_, _ = w.Write([]byte(\"ok\\n\"))\n}\n",
    # SQL
    "SELECT u.id, u.name, COUNT(o.id) AS n_orders\nFROM users u\nLEFT JOIN orders o ON o.user_id = u.id\nWHERE u.created_at >= '2024-01-01'\nGROUP BY u.id, u.name\nHAVING COUNT(o.id) > 3\nORDER BY n_orders DESC;\n",
    "CREATE TABLE IF NOT EXISTS tokens (\n  id INTEGER PRIMARY KEY,\n  piece TEXT NOT NULL UNIQUE,\n  score REAL DEFAULT 0.0\n);\n",
    # HTML / CSS
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Test &amp; more</title></head>\n<body>\n  <div class=\"box\"><p>Hello, <strong>world</strong>!</p></div>\n</body>\n</html>\n",
    "<table><thead><tr><th>Name</th><th>Qty</th></tr></thead><tbody><tr><td>Äpfel</td><td>3</td></tr></tbody></table>\n",
    ".box > p:first-child { margin: 0 auto; color: #ff00aa; font-family: \"Helvetica Neue\", sans-serif; }\n",
    # Java
    "public final class Main {\n    public static void main(String[] args) throws Exception {\n        Map<String, List<Integer>> m = new HashMap<>();\n        System.out.println(m.getOrDefault(\"k\", List.of()));\n    }\n}\n",
    # C++ / Haskell / misc
    "template <typename T>\nstd::vector<T> take(const std::vector<T>& v, size_t n) {\n    return {v.begin(), v.begin() + std::min(n, v.size())};\n}\n",
    "main :: IO ()\nmain = mapM_ (putStrLn . show) [x * y | x <- [1..3], y <- [1..3], x /= y]\n",
    "#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do\n  wc -l \"$f\" | awk '{print $1}' >> counts.log 2>&1\ndone\n",
    "\\begin{equation}\n  E = mc^2 \\quad \\sum_{i=0}^{n} \\frac{1}{i!} \\approx e\n\\end{equation}\n",
    "x = [i**2 for i in range(10) if i % 2 == 0]  # squares\nprint(f\"{x!r:>20}\")\n",
]

# Literal special-token strings of the six reference tokenizers, and near misses.
SPECIAL_STRINGS = [
    "<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_247|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>",
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<|vision_start|>", "<|image_pad|>", "<tool_response>", "<bos>", "<eos>",
    "<pad>", "<mask>", "[multimodal]", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
    "<image_soft_token>", "<unused0>", "<unused17>", "<unused6241>", "<table>", "</td>", "<h1>", "<strong>",
    "<code>", "</code>", "<div>", "<bbox>", "▁▁", "▁▁▁▁", "▁", "\t\t\t", "\n\n\n\n",
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<｜User｜>", "<｜Assistant｜>", "<|EOT|>",
    "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜tool▁calls▁begin｜>", "<｜tool▁call▁end｜>",
    "<｜tool▁sep｜>", "<｜place▁holder▁no▁7｜>", "<0x41>", "<0x0A>", "<0xFF>",
    # near misses
    "<|eot_id", "<|im_start|", "< s>", "<s >", "<|begin_of_text|>>", "<<bos>", "<unused>", "<unused-1>",
    "<｜User|>", "<|User｜>", "<|end_of_turn|>", "<start_of_turn", "</think", "<think >",
]

EMOJI_BASE = ["😀", "😂", "🥲", "😍", "🤔", "🙃", "😴", "🤖", "👻", "💩", "🔥", "✨", "🎉", "🚀", "🌍", "🌈", "🍕",
              "☕", "⚽", "🎸", "📚", "💡", "✅", "❌", "⚠️", "❤️", "🧡", "💜", "🖤", "♥", "★", "☀️", "✈️", "☎️"]
EMOJI_PEOPLE = ["👍", "👋", "🙏", "💪", "✌️", "🤝", "👏", "🧑", "👩", "👨", "🧒", "👶", "🏃", "🚴", "🧘", "🤷",
                "💁", "🙋", "👮", "🧑‍💻", "👩‍🔬", "👨‍🍳", "🧑‍🚀"]
SKIN = ["\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF"]
ZWJ_SEQS = ["👨‍👩‍👧‍👦", "👩‍👩‍👦", "👨‍👨‍👧‍👧", "🏳️‍🌈", "🏴‍☠️", "👁️‍🗨️", "❤️‍🔥", "🧑‍🤝‍🧑", "👩🏽‍💻", "👨🏿‍🚀",
            "🧑🏻‍❤️‍💋‍🧑🏾", "🐻‍❄️", "🏃‍♀️", "🤦🏼‍♂️", "👩‍❤️‍👨", "😶‍🌫️"]
FLAGS = ["🇺🇸", "🇬🇧", "🇯🇵", "🇰🇷", "🇨🇳", "🇮🇳", "🇧🇷", "🇪🇺", "🇺🇦", "🇸🇦", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]
KEYCAPS = ["1️⃣", "2️⃣", "#️⃣", "*️⃣", "0⃣"]

WHITESPACE = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", "\r\n\r\n", " \n", "\n ",
              "\u00a0", "\u200b", "\u200c", "\u200d", "\u2009", "\u202f", "\u3000", "\u2028", "\u2029", "\ufeff",
              "\u000b", "\u000c", "\u0085", "\u1680", "\u2003"]

WORDS = ("the of and to in is that it was for on are as with his they at be this from have or by one had not "
         "but what all were when we there can an your which their said if do will each about how up out them "
         "then she many some so these would other into has more her two like him see time could no make than "
         "first been its who now people my made over did down only way find use may water long little very "
         "after words called just where most know get through back much before go good new write our used me "
         "man too any day same right look think also around another came come work three word must because "
         "does part even place well such here take why things help put years different away again off went "
         "old number great tell men say small every found still between name should home big give air line "
         "set own under read last never us left end along while might next sound below saw something thought "
         "both few those always looked show large often together asked house don't world going want school "
         "important until form food keep children feet land side without boy once animals life enough took "
         "sometimes four head above kind began almost live page got earth need far hand high year mother light "
         "parts country father let night following picture being study second eyes soon times story boys since "
         "white days ever paper hard near sentence better best across during today others however sure means "
         "knew it's try told young miles sun ways thing whole hear example heard several change answer room sea "
         "against top turned learn point city play toward five using himself usually").split()


def git_show(path):
    try:
        return subprocess.run(["git", "-C", ROOT, "show", SOURCE_COMMIT + ":" + path], check=True,
                              capture_output=True).stdout.decode("utf-8", errors="replace")
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        sys.exit("make_tok_corpus: cannot read %s at %s (%s); run in the git checkout" % (path, SOURCE_COMMIT, e))


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.prose = [git_show(p) for p in PROSE_FILES]
        self.code = [git_show(p) for p in CODE_FILES]
        self.json_files = [git_show(p) for p in JSON_FILES]

    def window(self, texts, lo, hi):
        r = self.rng
        t = r.choice(texts)
        n = r.randint(lo, hi)
        if len(t) <= n:
            return t
        s = r.randrange(len(t) - n)
        if r.random() < 0.6:  # usually start at a line start
            nl = t.find("\n", s)
            if 0 <= nl < len(t) - n:
                s = nl + 1
        return t[s:s + n]

    def seg_prose(self):
        r = self.rng
        if r.random() < 0.7:
            return self.window(self.prose, 80, 500)
        words = [r.choice(WORDS) for _ in range(r.randint(5, 60))]
        for i in range(len(words)):
            x = r.random()
            if x < 0.08:
                words[i] = words[i].capitalize()
            elif x < 0.1:
                words[i] = words[i].upper()
            elif x < 0.16:
                words[i] += r.choice([",", ".", ";", ":", "!", "?", "...", "'s", "'ll", "'re", "'ve", "'d", "'M"])
        s = " ".join(words)
        return s[0].upper() + s[1:] + r.choice([".", "!", "?", "\n", ".\n\n", ""])

    def seg_code(self):
        r = self.rng
        if r.random() < 0.6:
            return self.window(self.code, 80, 600)
        s = r.choice(CODE_SNIPPETS)
        if r.random() < 0.3:
            s = s.replace("    ", "\t")
        if r.random() < 0.2:
            s = s.replace("\n", "\r\n")
        return s

    def rand_json_value(self, depth):
        r = self.rng
        x = r.random()
        if depth > 3 or x < 0.45:
            y = r.random()
            if y < 0.3:
                return r.randint(-10 ** r.randint(1, 12), 10 ** r.randint(1, 12))
            if y < 0.45:
                return round(r.uniform(-1e4, 1e4), r.randint(0, 8))
            if y < 0.5:
                return r.choice([True, False, None])
            return r.choice([self.seg_words(), self.seg_lang(), r.choice(EMOJI_BASE), r.choice(SPECIAL_STRINGS),
                             "C:\\path\\to\\file.txt", "line1\nline2\ttab", "quote \" and \\ backslash"])[:80]
        if x < 0.75:
            return {r.choice(WORDS) + ("_" + r.choice(WORDS) if r.random() < 0.4 else ""): self.rand_json_value(depth + 1)
                    for _ in range(r.randint(1, 5))}
        return [self.rand_json_value(depth + 1) for _ in range(r.randint(0, 5))]

    def seg_json(self):
        r = self.rng
        if r.random() < 0.25:
            return self.window(self.json_files, 80, 400)
        v = {r.choice(WORDS): self.rand_json_value(1) for _ in range(r.randint(1, 4))}
        return json.dumps(v, ensure_ascii=r.random() < 0.3, indent=r.choice([None, None, 2, 4, "\t"]))

    def seg_words(self):
        r = self.rng
        return " ".join(r.choice(WORDS) for _ in range(r.randint(1, 6)))

    def seg_numbers(self):
        r = self.rng
        out = []
        for _ in range(r.randint(2, 12)):
            k = r.randrange(10)
            if k == 0:
                out.append(str(r.randint(0, 10 ** r.randint(1, 25))))
            elif k == 1:
                out.append("%.*f" % (r.randint(1, 9), r.uniform(-1e6, 1e6)))
            elif k == 2:
                out.append("%04d-%02d-%02dT%02d:%02d:%02dZ" % (r.randint(1900, 2100), r.randint(1, 12), r.randint(1, 28),
                                                              r.randrange(24), r.randrange(60), r.randrange(60)))
            elif k == 3:
                out.append("0x%0*X" % (r.randint(1, 16), r.getrandbits(64)))
            elif k == 4:
                out.append("%.3e" % r.uniform(-1e30, 1e30))
            elif k == 5:
                out.append("${:,.2f}".format(r.uniform(0, 1e9)))
            elif k == 6:
                out.append("+1 (%03d) %03d-%04d" % (r.randrange(1000), r.randrange(1000), r.randrange(10000)))
            elif k == 7:
                digs = r.choice(["٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "０１２３４５６７８９", "〇一二三四五六七八九", "①②③④⑤⑥⑦⑧⑨"])
                out.append("".join(r.choice(digs) for _ in range(r.randint(1, 8))))
            elif k == 8:
                out.append("%d.%d.%d.%d" % tuple(r.randrange(256) for _ in range(4)))
            else:
                out.append("%d%%" % r.randint(0, 100) + r.choice(["", " ", "½", "¾", "²", "³"]))
        return r.choice([" ", ", ", "\n", "\t", " | "]).join(out)

    def seg_lang(self):
        r = self.rng
        lang = r.choice(sorted(LANG))
        sents = [r.choice(LANG[lang]) for _ in range(r.randint(1, 4))]
        x = r.random()
        if x < 0.2:  # shuffle words (new combinations)
            words = " ".join(sents).split(" ")
            r.shuffle(words)
            return " ".join(words)
        if x < 0.35:  # random code points of the script blocks
            blocks = {"zh": (0x4E00, 0x9FFF), "ja": (0x3040, 0x30FF), "ko": (0xAC00, 0xD7A3), "ar": (0x0621, 0x064A),
                      "he": (0x05D0, 0x05EA), "hi": (0x0900, 0x097F), "ru": (0x0400, 0x04FF), "uk": (0x0400, 0x04FF),
                      "el": (0x0370, 0x03FF), "th": (0x0E01, 0x0E5B)}
            lo, hi = blocks.get(lang, (0x00C0, 0x024F))
            return "".join(chr(r.randint(lo, hi)) if r.random() < 0.9 else " " for _ in range(r.randint(3, 60)))
        return r.choice(["", " ", "\n"]).join(sents)

    def seg_emoji(self):
        r = self.rng
        out = []
        for _ in range(r.randint(1, 12)):
            k = r.randrange(6)
            if k == 0:
                out.append(r.choice(EMOJI_BASE))
            elif k == 1:
                out.append(r.choice(EMOJI_PEOPLE) + r.choice(SKIN))
            elif k == 2:
                out.append(r.choice(ZWJ_SEQS))
            elif k == 3:
                out.append(r.choice(FLAGS))
            elif k == 4:
                out.append(r.choice(KEYCAPS))
            else:
                out.append(r.choice(WORDS))
            out.append(r.choice(["", "", " ", "  ", "\n", "\u200d"]))
        return "".join(out)

    def seg_combining(self):
        r = self.rng
        out = []
        for _ in range(r.randint(3, 30)):
            c = r.choice("aeiouAEIOUnNcCyYzsgk" + "αοиея" + "ꞎ ")
            for _ in range(r.choice([0, 1, 1, 1, 2, 3, 6])):
                c += chr(r.choice([r.randint(0x0300, 0x036F), 0x0301, 0x0308, 0x0327, 0x20DD, 0x1AB0, 0x1DC0]))
            out.append(c)
        s = "".join(out)
        if r.random() < 0.3:
            s += " " + r.choice(["e\u0301", "\u00e9", "A\u030a", "\u212b", "\u00c5", "ﬁ", "ﬃ", "Ⅻ", "㍿", "ｱ", "Ｈｅｌｌｏ",
                                 "\u1e9b\u0323", "\uac00", "\u1100\u1161", "\u0958"])
        return s

    def seg_space(self):
        r = self.rng
        out = []
        for _ in range(r.randint(1, 8)):
            x = r.random()
            if x < 0.4:
                out.append(r.choice(WHITESPACE) * r.randint(1, 4))
            elif x < 0.55:
                out.append(" " * r.randint(5, 70))
            elif x < 0.65:
                out.append(r.choice(["\t", "\n", "\r\n", "\u00a0", "\u3000"]) * r.randint(3, 40))
            else:
                out.append(r.choice(WORDS))
        return "".join(out)

    def seg_special(self):
        r = self.rng
        out = []
        for _ in range(r.randint(1, 6)):
            out.append(r.choice(["", " ", "  ", "\n", "x", "Hello", "\t", "▁"]))
            out.append(r.choice(SPECIAL_STRINGS))
            out.append(r.choice(["", " ", "  ", "\n", "y", "world", "\u00a0"]))
        return "".join(out)

    KINDS = ["prose", "prose", "prose", "code", "code", "json", "numbers", "lang", "lang", "lang", "emoji",
             "combining", "space", "special"]

    def case(self):
        r = self.rng
        target = r.randint(150, 600)
        parts = []
        total = 0
        for _ in range(r.randint(1, 4)):
            s = getattr(self, "seg_" + r.choice(self.KINDS))()
            parts.append(s)
            total += len(s.encode("utf-8"))
            if total >= target:
                break
            parts.append(r.choice(["", " ", "\n", "\n\n", " ", ". "]))
        s = "".join(parts)
        b = s.encode("utf-8")
        if len(b) > 700:  # cut to a few hundred bytes at a code point boundary
            cut = r.randint(300, 700)
            s = b[:cut].decode("utf-8", errors="ignore")
        return s


def build(seed, n_random, min_bytes):
    with open(os.path.join(HERE, "strings.json"), encoding="utf-8") as f:
        cases = json.load(f)
    cases += random_strings(seed, n_random)
    g = Gen(seed + 17)
    total = sum(len(c.encode("utf-8")) for c in cases)
    while total < min_bytes:
        c = g.case()
        if not c:
            continue
        cases.append(c)
        total += len(c.encode("utf-8"))
    return cases


def write_corpus(path, cases):
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(cases)))
        for c in cases:
            b = c.encode("utf-8")
            f.write(struct.pack("<I", len(b)) + b)


def read_corpus(path):
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise ValueError("%s: not a corpus file" % path)
    p = len(MAGIC)
    (n,) = struct.unpack_from("<I", data, p)
    p += 4
    out = []
    for _ in range(n):
        (l,) = struct.unpack_from("<I", data, p)
        p += 4
        out.append(data[p:p + l].decode("utf-8"))
        p += l
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "tok", "fixtures", "corpus.bin"))
    ap.add_argument("--seed", type=int, default=20240607)
    ap.add_argument("--n-random", type=int, default=300)
    ap.add_argument("--min-bytes", type=int, default=1100000)
    args = ap.parse_args()
    cases = build(args.seed, args.n_random, args.min_bytes)
    write_corpus(args.out, cases)
    raw = open(args.out, "rb").read()
    nbytes = sum(len(c.encode("utf-8")) for c in cases)
    print("corpus: %d cases, %d bytes of text, %s (%d bytes, sha256 %s)"
          % (len(cases), nbytes, args.out, len(raw), hashlib.sha256(raw).hexdigest()[:16]))


if __name__ == "__main__":
    main()
