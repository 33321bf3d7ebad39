#!/usr/bin/env bash
# Build the public-domain training corpus of the bundled model (issue 8).
# Runs on a Debian development machine (needs apt-get as root, or the packages
# already installed). Deterministic: the same Debian package versions give
# byte-identical output (the script prints sha256 sums to compare).
#
#   tools/train/prepare_corpus.sh [OUTDIR]     (default: data/corpus)
#
# Sources (all public domain as texts; see tools/train/README.md):
#   bible-kjv + bible-kjv-text  King James Version (1611), through the `bible` program
#   r-cran-janeaustenr          Jane Austen's six novels (1811-1818), read with Rscript
#   dict-devil                  Ambrose Bierce, The Devil's Dictionary (1911)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/data/corpus}"

pkgs=(bible-kjv bible-kjv-text r-cran-janeaustenr dict-devil)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi
for p in "${pkgs[@]}"; do
    printf '%-22s %s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p")"
done

raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT

# King James Bible: every verse of Genesis 1:1 .. Revelation 22:21, one verse per
# line (-l with a huge width disables the program's line wrapping), chapter
# headings "Book N".
LC_ALL=C bible -l100000 "gen1:1-rev22:21" > "$raw/kjv.txt"

# Jane Austen: the package's six character vectors (one element per line of the
# Project Gutenberg text), in a fixed order.
Rscript --vanilla -e '
  out <- commandArgs(trailingOnly = TRUE)[1]
  for (n in c("sensesensibility", "prideprejudice", "mansfieldpark",
              "emma", "northangerabbey", "persuasion")) {
    e <- new.env()
    data(list = n, package = "janeaustenr", envir = e)
    con <- file(file.path(out, paste0("austen_", n, ".txt")), "wb")
    writeLines(enc2utf8(get(n, envir = e)), con, useBytes = TRUE)
    close(con)
  }' "$raw" >&2

# The Devil's Dictionary: dictd's .dict.dz is gzip-compatible (dictzip).
gzip -dc /usr/share/dictd/devil.dict.dz > "$raw/devil.txt"

python3 "$here/prepare_corpus.py" "$raw" "$out"
