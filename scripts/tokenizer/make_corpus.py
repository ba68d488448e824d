#!/usr/bin/env python3
"""Builds fixtures/tokenizer/corpus.jsonl, the tokenizer parity corpus: one JSON object per
line, {"a": text} or {"a": text, "b": text, "max_length": n, "truncation": strategy}.

Deterministic (seeded) and pure Python: real English prose from the standard library's
docstrings, the 48 reference sentences, every script, emoji sequences, combining marks,
control and zero-width characters, odd spaces, punctuation clusters, numbers, URLs, code,
words of 99 to 200 characters, literal special tokens, case mappings, random code points, and
pairs that need truncation. Run: python3 scripts/tokenizer/make_corpus.py
"""
import importlib
import inspect
import json
import random
import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "fixtures/tokenizer/corpus.jsonl"
rng = random.Random(20261126)
lines = []


def add(text, **kw):
    lines.append(dict(a=text, **kw))


# --- Real English prose: standard-library docstrings, split into sentences. -------------
MODULES = """os re json collections itertools functools typing pathlib argparse logging unittest
email http.client urllib.parse csv datetime decimal fractions statistics random string textwrap
difflib heapq bisect shutil tempfile subprocess threading asyncio socket zipfile tarfile sqlite3
html pickle copy pprint inspect ast dis tokenize codecs unicodedata locale gettext calendar time
math operator contextlib abc dataclasses enum numbers weakref types traceback warnings io glob
fnmatch linecache platform queue sched concurrent.futures multiprocessing hashlib hmac secrets
base64 binascii struct array mimetypes smtplib imaplib ftplib uuid ipaddress configparser
optparse getopt cmd shlex doctest pdb timeit trace cProfile pstats sysconfig site zipimport
pkgutil importlib graphlib selectors signal mmap codeop code wave colorsys xml.dom.minidom
xml.sax plistlib netrc mailbox quopri webbrowser wsgiref.simple_server http.server
http.cookies urllib.request urllib.robotparser ssl""".split()
prose = []
for name in MODULES:
    try:
        mod = importlib.import_module(name)
    except Exception:
        continue
    docs = [inspect.getdoc(mod) or ""]
    for _, obj in sorted(vars(mod).items()):
        if inspect.isfunction(obj) or inspect.isclass(obj):
            docs.append(inspect.getdoc(obj) or "")
    for doc in docs:
        for para in doc.split("\n\n"):
            para = " ".join(para.split())
            for sent in re.split(r"(?<=[.!?])\s+(?=[A-Z])", para):
                if 25 <= len(sent) <= 400 and sum(c.isalpha() for c in sent) > len(sent) / 2:
                    prose.append(sent)
prose = sorted(set(prose))
rng.shuffle(prose)
for s in prose[:1800]:
    add(s)
reference = json.loads((ROOT / "fixtures/reference/minilm/sentences.json").read_text())
for s in reference:
    add(s)

# --- Every script: words of assigned characters from each block. --------------------------
BLOCKS = {
    "latin-1": (0xC0, 0xFF), "latin-ext-a": (0x100, 0x17F), "latin-ext-b": (0x180, 0x24F),
    "ipa": (0x250, 0x2AF), "greek": (0x370, 0x3FF), "cyrillic": (0x400, 0x4FF),
    "armenian": (0x531, 0x58A), "hebrew": (0x5D0, 0x5EA), "arabic": (0x620, 0x64A),
    "syriac": (0x710, 0x72F), "thaana": (0x780, 0x7B1), "nko": (0x7CA, 0x7EA),
    "devanagari": (0x900, 0x97F), "bengali": (0x980, 0x9FF), "gurmukhi": (0xA00, 0xA7F),
    "gujarati": (0xA80, 0xAFF), "oriya": (0xB00, 0xB7F), "tamil": (0xB80, 0xBFF),
    "telugu": (0xC00, 0xC7F), "kannada": (0xC80, 0xCFF), "malayalam": (0xD00, 0xD7F),
    "sinhala": (0xD80, 0xDFF), "thai": (0xE00, 0xE7F), "lao": (0xE80, 0xEFF),
    "tibetan": (0xF00, 0xFFF), "myanmar": (0x1000, 0x109F), "georgian": (0x10A0, 0x10FF),
    "hangul-jamo": (0x1100, 0x11FF), "ethiopic": (0x1200, 0x137F), "cherokee": (0x13A0, 0x13FF),
    "canadian": (0x1400, 0x167F), "ogham": (0x1680, 0x169F), "runic": (0x16A0, 0x16FF),
    "khmer": (0x1780, 0x17FF), "mongolian": (0x1800, 0x18AF), "georgian-mtavruli": (0x1C90, 0x1CBF),
    "latin-ext-add": (0x1E00, 0x1EFF), "greek-ext": (0x1F00, 0x1FFF), "hiragana": (0x3041, 0x309F),
    "katakana": (0x30A0, 0x30FF), "bopomofo": (0x3105, 0x312F), "hangul": (0xAC00, 0xD7A3),
    "cjk": (0x4E00, 0x9FFF), "cjk-ext-a": (0x3400, 0x4DBF), "cjk-ext-b": (0x20000, 0x2A6DF),
    "cjk-ext-e": (0x2B820, 0x2CEAF), "cjk-compat": (0xF900, 0xFAFF), "yi": (0xA000, 0xA48C),
    "vai": (0xA500, 0xA62B), "tifinagh": (0x2D30, 0x2D7F), "coptic": (0x2C80, 0x2CFF),
    "gothic": (0x10330, 0x1034A), "deseret": (0x10400, 0x1044F), "linear-b": (0x10000, 0x1005D),
    "cuneiform": (0x12000, 0x12399), "hieroglyphs": (0x13000, 0x1342E), "math-alnum": (0x1D400, 0x1D7FF),
    "fullwidth": (0xFF01, 0xFF5E), "halfwidth-kana": (0xFF61, 0xFF9F), "enclosed": (0x2460, 0x24FF),
    "braille": (0x2800, 0x28FF), "box": (0x2500, 0x257F), "arrows": (0x2190, 0x21FF),
    "math-ops": (0x2200, 0x22FF), "currency": (0x20A0, 0x20C0), "letterlike": (0x2100, 0x214F),
    "adlam": (0x1E900, 0x1E95F), "osage": (0x104B0, 0x104FF), "masaram-gondi": (0x11D00, 0x11D59),
    "hmong-np": (0x1E100, 0x1E14F), "yezidi": (0x10E80, 0x10EB1), "vithkuqi": (0x10570, 0x105BC),
    "kawi": (0x11F00, 0x11F59), "tangut": (0x17000, 0x187F7), "cyrillic-ext-d": (0x1E030, 0x1E08F),
}
for name, (lo, hi) in BLOCKS.items():
    chars = [chr(c) for c in range(lo, hi + 1) if unicodedata.category(chr(c)) != "Cn"]
    if not chars:
        chars = [chr(c) for c in range(lo, hi + 1)]
    for _ in range(22):
        words = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 9))) for _ in range(rng.randint(1, 8))]
        add(rng.choice([" ", "  ", ", ", ". "]).join(words) + rng.choice(["", ".", "!", "?"]))

# --- Emoji: modifiers, ZWJ sequences, flags, keycaps, variation selectors. ----------------
EMOJI = ["😀", "😂", "🥰", "🫠", "🤖", "👍", "👍🏽", "👍🏿", "👋🏻", "👨‍👩‍👧‍👦", "👩🏽‍💻",
         "🏳️‍🌈", "🏴‍☠️", "❤️", "❤", "♥️", "☺️", "1️⃣", "#️⃣", "🇫🇷", "🇯🇵", "🇺🇳",
         "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🧑‍🤝‍🧑", "👁️‍🗨️", "🐈‍⬛", "🧔‍♀️", "💩", "🔥", "✨", "🎉", "🙏🏾", "™️", "©", "🦀"]
for _ in range(220):
    parts = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(EMOJI))
        elif r < 0.7:
            parts.append(rng.choice(["hello", "great", "Thanks", "ok", "lol", "wow", "nice", "👍🏽done"]))
        else:
            parts.append("".join(rng.choice(EMOJI) for _ in range(rng.randint(2, 4))))
    add(rng.choice([" ", "", "  "]).join(parts))

# --- Combining marks, precomposed and decomposed forms. -----------------------------------
MARKS = [chr(c) for c in range(0x300, 0x370)] + ["\u0483", "\u05b0", "\u064b", "\u0e48", "\u093f", "\u094d", "\u0f71", "\u1ab0", "\u1dc0", "\u20d0", "\ufe20", "\u302a", "\U0001d165"]
BASES = list("aeiouAEIOUnNcCsSzZyY") + ["ก", "क", "α", "ш", "ה", "ب", "1", " ", "-"]
for _ in range(300):
    words = []
    for _ in range(rng.randint(1, 6)):
        w = ""
        for _ in range(rng.randint(1, 8)):
            w += rng.choice(BASES) + "".join(rng.choice(MARKS) for _ in range(rng.choice([0, 0, 1, 1, 2, 3])))
        words.append(w)
    add(" ".join(words))
for s in ["Café crème brûlée", "Cafe\u0301 cre\u0300me", "Ångström Ǻ Å Å", "Ελληνικά ΐ ΰ", "Tiếng Việt có dấu",
          "Zalgo: H̷̢̛e̵͎̓l̶̰̽l̸̳̈́ő̷̜", "नमस्ते दुनिया", "עִבְרִית", "العَرَبِيَّة", "한국어 텍스트", "한글",
          "ﬁ ﬂ ﬀ ﬃ", "Ǆ ǅ ǆ ǈ", "ḱṓ ǹ", "e\u0301\u0323 e\u0323\u0301", "\u0301start", "a\u0308\u0304"]:
    add(s)

# --- Control, format and zero-width characters. -------------------------------------------
CONTROLS = [chr(c) for c in list(range(0, 32)) + [0x7F] + list(range(0x80, 0xA0))] + [
    "\u00ad", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d",
    "\u202e", "\u2060", "\u2061", "\u2066", "\u2069", "\ufeff", "\ufff9", "\ufffb", "\ufffc", "\ufffd",
    "\U000e0001", "\U000e0041", "\ue000", "\uf8ff", "\U000f0000", "\ufdd0", "\ufffe", "\u180e",
    "\u061c", "\U0001d173", "\U00013430"]
for _ in range(300):
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 6))]
    s = ""
    for w in words:
        s += w + "".join(rng.choice(CONTROLS) for _ in range(rng.choice([0, 1, 1, 2])))
    add(s)

# --- Odd spaces. ---------------------------------------------------------------------------
SPACES = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\u00a0", "\u1680",
          "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007", "\u2008", "\u2009",
          "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u180e", "\u200b"]
for _ in range(250):
    words = [rng.choice(["alpha", "beta", "gamma", "x", "Δ", "中", "é", "done"]) for _ in range(rng.randint(1, 6))]
    add("".join(w + "".join(rng.choice(SPACES) for _ in range(rng.randint(1, 3))) for w in words))
for s in ["", " ", "   ", "\t\n", "\u3000", "\u200b", "\x00", "\ufeff\ufeff", "\n\n\n"]:
    add(s)

# --- Punctuation clusters and symbols. ------------------------------------------------------
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["…", "—", "–", "‐", "«", "»", "„", "“", "”", "‘", "’", "‹", "›",
         "【", "】", "、", "。", "¿", "¡", "‼", "⁉", "※", "†", "‡", "§", "¶", "‿", "⁀", "＿", "・", "〜", "©", "®", "™",
         "°", "±", "×", "÷", "€", "£", "¥", "¢", "₹", "∑", "√", "∞", "≠", "≈", "←", "→", "⇒", "♪", "★", "☆", "◆", "·", "¨", "´", "ʹ"]
for _ in range(300):
    s = ""
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if r < 0.5:
            s += "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 5)))
        else:
            s += rng.choice(["word", "Test", "x", "42", "ok", " ", "  ", "é"])
    add(s)

# --- Numbers. --------------------------------------------------------------------------------
for _ in range(200):
    r = rng.random()
    n = rng.choice([
        str(rng.randint(-10**6, 10**12)), f"{rng.uniform(-1e4, 1e4):.4f}", f"{rng.randint(1, 999)},{rng.randint(100, 999)},{rng.randint(100, 999)}.{rng.randint(0, 99)}",
        f"{rng.uniform(0, 1):.3e}", f"+1 ({rng.randint(200, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
        f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        f"{rng.randint(0, 100)}%", rng.choice(["1st", "2nd", "3rd", "42nd", "Ⅻ", "x²", "½", "¾", "٣٤٥", "१२३", "１２３", "𝟙𝟚𝟛", "0x1F600", "0b1011", "1_000_000", "3.14159265358979"])])
    add(rng.choice(["", "The value is ", "approx. ", "Total: ", "≈"]) + n + rng.choice(["", ".", " units", "!", " and more"]))

# --- URLs, e-mail, paths, handles. ---------------------------------------------------------
for _ in range(150):
    add(rng.choice(["See ", "Visit ", "", "mail ", "path: "]) + rng.choice([
        f"https://example.com/{rng.choice(['path', 'a/b/c', 'search'])}?q={rng.randint(1, 999)}&lang=en#sec-{rng.randint(1, 9)}",
        "http://www.Example.org/Ünïcode/路径?x=1", "ftp://files.example.net/pub/file_v2.tar.gz",
        f"user.name+tag{rng.randint(1, 99)}@sub.example.co.uk", "C:\\Users\\Test\\Documents\\file (1).txt",
        "/usr/local/bin/python3.11", "192.168.0.1:8080", "[2001:db8::1]:443", "#hashtag #AI2026", "@someone_else",
        "https://xn--bcher-kva.example/", "mailto:hello@example.com?subject=Hi%20there", "s3://bucket/key/with spaces"]))

# --- Code. -------------------------------------------------------------------------------------
CODE = ["def f(x): return x**2 + 1", "fn main() { println!(\"{}\", 1 + 2); }", "const x = a?.b ?? c;",
        "int main(void) { return 0; }", "SELECT * FROM users WHERE id = 42 AND name LIKE '%o%';",
        "for i in range(10):\n    print(i)", "if (a && b || !c) { x++; }", "^\\d{3}-\\d{4}$", "ls -la | grep '.rs' > out.txt",
        "<div class=\"x\">Hello &amp; bye</div>", "{\"key\": [1, 2.5, null, true], \"k2\": {\"a\": \"b\"}}",
        "\\frac{a}{b} + \\sum_{i=0}^{n} x_i", "x => x * 2", "std::vec::Vec<Option<&'static str>>", "#include <stdio.h>",
        "let mut v: Vec<u8> = vec![0; 1024];", "a[i][j] += b[k] * c[k][j];", "@decorator\ndef g(*args, **kwargs): pass",
        "camelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case-id", "0xDEADBEEF >> 3 & 0xFF"]
for _ in range(200):
    add(" ".join(rng.choice(CODE) for _ in range(rng.randint(1, 3))))

# --- Long words: 99 to 200 characters (after normalisation where it matters). -----------------
ALPHA = "abcdefghijklmnopqrstuvwxyz"
for n in [98, 99, 100, 101, 102, 103, 104, 105, 120, 150, 200]:
    add("a" * n)
    add("x " + "".join(rng.choice(ALPHA) for _ in range(n)) + " y")
    add("é" * n)
    add("E\u0301" * n)
    add("İ" * (n // 2))
    add("un" + "believable" * (n // 10))
    add(("ab" * n)[:n] + "!")
    add("中" * n)
    add(("word" * 50)[:n] + " " + ("Word" * 50)[:n])

# --- Literal special tokens. --------------------------------------------------------------------
SPECIAL = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]"]
for _ in range(250):
    parts = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.45:
            parts.append(rng.choice(SPECIAL))
        elif r < 0.55:
            parts.append(rng.choice(["[mask]", "[CLS", "SEP]", "[[MASK]]", "[ MASK ]", "[MASK]s", "é[MASK]é", "[Mask]"]))
        else:
            parts.append(rng.choice(["the", "Paris", "is", "capital", "of", "France", ".", "é", "中"]))
    add(rng.choice([" ", ""]).join(parts))

# --- Case mappings. ------------------------------------------------------------------------
for s in ["STRASSE Straße ẞ", "ΟΔΥΣΣΕΥΣ Σίσυφος", "İstanbul ISTANBUL ıi", "ǄUNGLA ǅungla", "ᏣᎳᎩ ꮳꮃꭹ",
          "ᲐᲑᲒ ábc", "𐐀𐐨 𐐁", "ＡＢＣ ａｂｃ", "Ⅻ ⅻ", "ℌℑℜ", "ﬓ", "Ω Ω", "K K Å", "Ꙁ ꙁ", "ꞫꞬ", "Ɐ ɐ", "ǅ", "Ω"]:
    add(s)
    add(s.upper())
    add(s.lower())

# --- Random code points and random soups. ----------------------------------------------------
for _ in range(300):
    n = rng.randint(1, 40)
    cps = []
    while len(cps) < n:
        cp = rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FFF), rng.randint(0x3000, 0xFFFD), rng.randint(0x10000, 0x10FFFF)])
        if not 0xD800 <= cp <= 0xDFFF:
            cps.append(cp)
    add("".join(map(chr, cps)))
for _ in range(150):
    add("".join(rng.choice("abc XYZ 123 .,;:!?-_'\"()[]{}<>/\\|@#$%^&*~`\t") for _ in range(rng.randint(1, 80))))

# --- Pairs, with and without truncation. ------------------------------------------------------
pool = [l["a"] for l in lines if l["a"].strip()]
for _ in range(700):
    a, b = rng.choice(pool), rng.choice(pool)
    if rng.random() < 0.3:
        a = " ".join([a] * rng.randint(2, 6))
    m = rng.choice([3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256])
    add(a, b=b, max_length=m, truncation=rng.choice(["longest_first", "longest_first", "only_first", "only_second"]))
# Single sequences with a short max length.
for _ in range(200):
    add(rng.choice(pool), max_length=rng.choice([2, 3, 5, 8, 16, 33]), truncation="longest_first")

OUT.parent.mkdir(parents=True, exist_ok=True)
with OUT.open("w", encoding="utf-8") as f:
    for l in lines:
        f.write(json.dumps(l, ensure_ascii=True) + "\n")
print(f"wrote {len(lines)} lines to {OUT}")
