#!/usr/bin/env bash
# The Pang & Lee sentence-polarity corpus (2,000 positive + 2,000 negative movie-review
# sentences), as Debian's python3-pattern ships it, extracted into a git-ignored folder:
#
#   .cache/data/pang-lee/polarity-en-pang&lee2.csv   the source ("label","text"; 1 / -1;
#                                                     UTF-8 with BOM), sha256-checked
#   .cache/data/pang-lee/train.csv, test.csv         derived: header text,label; labels
#                                                     positive / negative; RFC 4180 quoting
#
# Split rule (the same in every language): for each class separately, in file order, the
# example with index i within its class (counting from 0) goes to test when i % 5 == 4,
# else to train. Texts have their leading/trailing whitespace removed (every source text
# ends in " \n"). 1,600 + 1,600 train, 400 + 400 test; train.csv and test.csv keep the
# source file's order.
#
# Licence: the corpus is "meant for personal use". Never commit it, nor anything derived
# from it that contains its text.
#
# Idempotent: a second run only checks. Needs apt-get (Debian) and python3 (stdlib only).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=.cache/data/pang-lee
SRC_NAME='polarity-en-pang&lee2.csv'
SRC="$DIR/$SRC_NAME"
# sha256 of the file in python3-pattern 2.6+git20180818-4 (Debian bookworm).
SRC_SHA=1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f

say() { printf '\033[1m[pang-lee]\033[0m %s\n' "$*"; }

if ! echo "$SRC_SHA  $SRC" | sha256sum -c --status 2>/dev/null; then
  say "extracting $SRC_NAME from Debian python3-pattern (apt-get download)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # apt-get download needs no root, but as root apt drops to the _apt user to write the
  # file: let it into the folder.
  chmod 755 "$tmp"
  if ! (cd "$tmp" && apt-get download -qq python3-pattern >/dev/null 2>&1); then
    # A fresh machine may have no package lists yet; fetching them needs root.
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    say "apt-get update"
    $sudo apt-get update -qq
    (cd "$tmp" && apt-get download -qq python3-pattern)
  fi
  dpkg -x "$tmp"/python3-pattern_*.deb "$tmp/x"
  mkdir -p "$DIR"
  cp "$tmp/x/usr/share/doc/python3-pattern/test/corpora/$SRC_NAME" "$SRC"
  rm -rf "$tmp"
  trap - EXIT
fi
got=$(sha256sum "$SRC" | cut -d' ' -f1)
say "sha256 $got  $SRC"
if [ "$got" != "$SRC_SHA" ]; then
  echo "$SRC: sha256 mismatch (expected $SRC_SHA)" >&2
  exit 1
fi

# The derived split; files are rewritten only when their content would change.
python3 - "$DIR" "$SRC_NAME" <<'PY'
import csv, io, os, sys

d, name = sys.argv[1], sys.argv[2]
with open(os.path.join(d, name), encoding="utf-8-sig", newline="") as f:
    rows = list(csv.reader(f))
labels = {"1": "positive", "-1": "negative"}
seen = {"positive": 0, "negative": 0}
split = {"train": [], "test": []}
for label, text in rows:
    label = labels[label]
    i = seen[label]
    seen[label] += 1
    split["test" if i % 5 == 4 else "train"].append((text.strip(), label))
for part, examples in split.items():
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["text", "label"])
    w.writerows(examples)
    data = buf.getvalue().encode("utf-8")
    path = os.path.join(d, part + ".csv")
    old = open(path, "rb").read() if os.path.exists(path) else None
    if old != data:
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    pos = sum(1 for _, l in examples if l == "positive")
    print(f"[pang-lee] {path}: {len(examples)} examples ({pos} positive, "
          f"{len(examples) - pos} negative){' (written)' if old != data else ''}")
PY
(cd "$DIR" && sha256sum train.csv test.csv | sed 's/^/[pang-lee] sha256 /')
