#!/usr/bin/env python3
"""Clean and split the raw public-domain texts into the training corpus.

Called by prepare_corpus.sh, which extracts the raw texts from Debian packages:

    prepare_corpus.py RAWDIR OUTDIR

Writes OUTDIR/train.txt, OUTDIR/valid.txt, OUTDIR/heldout.txt and
OUTDIR/manifest.json. Python 3 standard library only; deterministic.

Each source is cut into units (a Bible chapter, a novel's chapter, a dictionary
entry), numbered from 0 in source order. The split rule, per source:
    unit i goes to heldout.txt  if i % 20 == 10        (5 %)
                   valid.txt    if i % 40 == 25        (2.5 %, checkpoint selection only)
                   train.txt    otherwise
Inside each file the units keep their source order, sources in the order
KJV, Austen, Bierce, joined by one blank line. Every file ends with "\\n".
heldout.txt therefore starts with King James text (Genesis 11, 31, ...), which
is what the model's reference perplexity slice (its first 32768 characters) is.
"""
import hashlib
import json
import os
import re
import sys
import unicodedata

HELDOUT_MOD, HELDOUT_REM = 20, 10
VALID_MOD, VALID_REM = 40, 25

AUSTEN = [  # (file stem, title) in the order written
    ("sensesensibility", "Sense and Sensibility"),
    ("prideprejudice", "Pride and Prejudice"),
    ("mansfieldpark", "Mansfield Park"),
    ("emma", "Emma"),
    ("northangerabbey", "Northanger Abbey"),
    ("persuasion", "Persuasion"),
]


def split_of(i):
    if i % HELDOUT_MOD == HELDOUT_REM:
        return "heldout"
    if i % VALID_MOD == VALID_REM:
        return "valid"
    return "train"


def norm(s):
    """NFC, no control characters except \\n, no trailing spaces on lines."""
    s = unicodedata.normalize("NFC", s)
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    s = "".join(ch for ch in s if ch == "\n" or unicodedata.category(ch)[0] != "C")
    return "\n".join(line.rstrip() for line in s.split("\n"))


def paragraphs(lines):
    """Group lines into paragraphs (separated by blank lines)."""
    para = []
    for line in lines:
        if line.strip():
            para.append(line)
        elif para:
            yield para
            para = []
    if para:
        yield para


def clean_paragraph(para, strip_italics):
    """Prose paragraphs are unwrapped onto one line; verse (two or more
    indented lines) keeps its lines, indented by four spaces."""
    indented = sum(1 for line in para if line[:1].isspace())
    if indented >= 2:
        out = []
        for line in para:
            t = re.sub(r"\s+", " ", line.strip())
            out.append(("    " + t) if line[:1].isspace() else t)
        text = "\n".join(out)
    else:
        text = re.sub(r"\s+", " ", " ".join(line.strip() for line in para)).strip()
    if strip_italics:  # _word_ marks italics in the Gutenberg texts
        text = re.sub(r"(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])", "", text)
    return text


def kjv_units(path):
    """One unit per chapter: "Book N", blank line, one verse per line
    (verse numbers dropped)."""
    units, cur = [], None
    with open(path, encoding="ascii") as f:
        lines = f.read().split("\n")
    # A chapter heading ("Genesis 1", "1 Samuel 1", "Song of Solomon 2") stands
    # between blank lines; verses ("  1 In the beginning ...") never do.
    heading = re.compile(r"^(?:[123] )?[A-Z][A-Za-z ]* \d+$")
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        blank_before = k == 0 or not lines[k - 1].strip()
        blank_after = k + 1 == len(lines) or not lines[k + 1].strip()
        if blank_before and blank_after and heading.match(line):
            cur = (line.strip(), [])
            units.append(cur)
            continue
        m = re.match(r"^\s*(\d+) (.*)$", line)
        assert m and cur is not None, line
        cur[1].append(m.group(2).strip())
    nverses = sum(len(v) for _, v in units)
    assert len(units) == 1189 and nverses == 31102, (len(units), nverses)
    return [h + "\n\n" + "\n".join(norm(v) for v in vs) for h, vs in units]


def austen_units(rawdir):
    units = []
    chap = re.compile(r"^(CHAPTER|Chapter) ([IVXLC]+|\d+)\.?$")
    for stem, title in AUSTEN:
        with open(os.path.join(rawdir, "austen_%s.txt" % stem), encoding="utf-8") as f:
            lines = norm(f.read()).split("\n")
        # drop the editor's modern note appended to Northanger Abbey
        for k, line in enumerate(lines):
            if line.strip() == "A NOTE ON THE TEXT":
                lines = lines[:k]
                break
        # drop the closing "THE END" / "FINIS"
        while lines and (not lines[-1].strip() or lines[-1].strip().upper() in ("THE END", "FINIS")):
            lines.pop()
        starts = [k for k, line in enumerate(lines) if chap.match(line.strip())]
        assert len(starts) >= 20, (stem, len(starts))
        pieces = [lines[:starts[0]]] + [lines[a:b] for a, b in zip(starts, starts[1:] + [len(lines)])]
        for n, piece in enumerate(pieces):
            paras = [clean_paragraph(p, True) for p in paragraphs(piece)]
            paras = [p for p in paras if p]
            if n == 0:  # front matter: title page (and Northanger's advertisement)
                paras = [title.upper(), "By Jane Austen"] + [
                    p for p in paras
                    if not re.match(r"^(by|By|BY)( Jane Austen.*)?$|^\(?\d{4}\)?$|^Jane Austen", p)
                    and p.upper() != title.upper()
                    and p.upper() != "EMMA"]
            units.append("\n\n".join(paras))
    return units


def devil_units(path):
    with open(path, encoding="utf-8") as f:
        lines = norm(f.read()).split("\n")
    first = next(k for k, line in enumerate(lines) if line.startswith("ABASEMENT, n."))
    lines = lines[first:]
    while lines and (not lines[-1].strip() or lines[-1].strip() == "abcdefghijklmnopqrstuvwxyz"):
        lines.pop()
    head = re.compile(r"^[A-Z][A-Z'\-. ]*[A-Z.], [a-z]")
    starts = [k for k, line in enumerate(lines) if head.match(line)]
    assert len(starts) > 900, len(starts)
    units = []
    for a, b in zip(starts, starts[1:] + [len(lines)]):
        paras = [clean_paragraph(p, True) for p in paragraphs(lines[a:b])]
        units.append("\n\n".join(p for p in paras if p))
    return units


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: prepare_corpus.py RAWDIR OUTDIR")
    rawdir, outdir = sys.argv[1], sys.argv[2]
    sources = [
        ("kjv", kjv_units(os.path.join(rawdir, "kjv.txt"))),
        ("austen", austen_units(rawdir)),
        ("devil", devil_units(os.path.join(rawdir, "devil.txt"))),
    ]
    parts = {"train": [], "valid": [], "heldout": []}
    manifest = {"rule": {"heldout": "unit %% %d == %d" % (HELDOUT_MOD, HELDOUT_REM),
                         "valid": "unit %% %d == %d" % (VALID_MOD, VALID_REM)},
                "sources": {}, "files": {}}
    for name, units in sources:
        counts = {"train": 0, "valid": 0, "heldout": 0}
        for i, u in enumerate(units):
            u = u.strip("\n")
            assert u and "\n\n\n" not in u, (name, i)
            s = split_of(i)
            parts[s].append(u)
            counts[s] += 1
        manifest["sources"][name] = {"units": len(units), "chars": sum(len(u) for u in units), **counts}
    os.makedirs(outdir, exist_ok=True)
    for s, units in parts.items():
        text = "\n\n".join(units) + "\n"
        data = text.encode("utf-8")
        with open(os.path.join(outdir, s + ".txt"), "wb") as f:
            f.write(data)
        manifest["files"][s + ".txt"] = {"chars": len(text), "bytes": len(data),
                                         "sha256": hashlib.sha256(data).hexdigest()}
    with open(os.path.join(outdir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    for name, m in manifest["sources"].items():
        print("%-8s %5d units %9d chars  train %d  valid %d  heldout %d"
              % (name, m["units"], m["chars"], m["train"], m["valid"], m["heldout"]))
    for s, m in manifest["files"].items():
        print("%-12s %9d bytes  %s" % (s, m["bytes"], m["sha256"]))


if __name__ == "__main__":
    main()
