#!/usr/bin/env python3
"""Remembers which translation units clang-tidy passed, so scripts/lint runs it only on the
others (a clean tree re-linted, or a fresh clone of a commit an earlier run checked).

A pass is remembered under a SHA-256 of everything clang-tidy's verdict depends on: the
clang-tidy binary's version, .clang-tidy, the compile command and the translation unit's
preprocessed text *with its comments* (so NOLINT lines count) - the root of the source tree
and of the build tree replaced by placeholders, so a clone in another directory hits too.
Only passes are stored; a finding is never cached, it shows again on every run.

  tidy_cache.py todo BUILD_DIR ROOT REGEX     prints the files that need clang-tidy
  tidy_cache.py record BUILD_DIR ROOT FILE... remembers that those files passed
Cache: $PBX_TIDY_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/pbx-mfa/clang-tidy.
"""
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys


def cache_dir():
    if os.environ.get("PBX_TIDY_CACHE"):
        return os.environ["PBX_TIDY_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pbx-mfa", "clang-tidy")


def entries(build_dir):
    with open(os.path.join(build_dir, "compile_commands.json"), encoding="utf-8") as f:
        return {e["file"]: e for e in json.load(f)}


def preprocess_command(entry):
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    if os.path.basename(args[0]) == "ccache":
        args = args[1:]
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":
            skip = True
            continue
        if a == "-c":
            continue
        out.append(a)
    return out + ["-E", "-C"]


def key(entry, root, build_dir, common):
    h = hashlib.sha256(common)
    cmd = preprocess_command(entry)
    text = subprocess.run(cmd, cwd=entry["directory"], check=True, capture_output=True).stdout
    for path, mark in ((os.path.abspath(build_dir), b"@BUILD@"), (root, b"@ROOT@")):
        text = text.replace(path.encode(), mark)
    h.update(" ".join(cmd).replace(os.path.abspath(build_dir), "@BUILD@")
             .replace(root, "@ROOT@").encode())
    h.update(b"\0")
    h.update(text)
    return h.hexdigest()


def common_input(root):
    version = subprocess.run([os.environ.get("PBX_CLANG_TIDY", "clang-tidy"), "--version"], check=True, capture_output=True).stdout
    with open(os.path.join(root, ".clang-tidy"), "rb") as f:
        config = f.read()
    return version + b"\0" + config + b"\0"


def keys_of(files, db, root, build_dir):
    common = common_input(root)
    jobs = os.cpu_count() or 2
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {f: pool.submit(key, db[f], root, build_dir, common) for f in files}
        out = {}
        for f, fut in futures.items():
            try:
                out[f] = fut.result()
            except (subprocess.CalledProcessError, OSError):
                out[f] = None  # not preprocessable here: clang-tidy runs and says why
        return out


def main(argv):
    if len(argv) < 4 or argv[1] not in ("todo", "record"):
        sys.stderr.write(__doc__)
        return 2
    mode, build_dir, root = argv[1], argv[2], os.path.abspath(argv[3])
    db = entries(build_dir)
    store = cache_dir()
    if mode == "todo":
        pattern = re.compile(argv[4])
        files = sorted(f for f in db if pattern.search(f))
        for f, k in keys_of(files, db, root, build_dir).items():
            if k is None or not os.path.exists(os.path.join(store, k)):
                print(f)
        return 0
    os.makedirs(store, exist_ok=True)
    for f, k in keys_of([f for f in argv[4:] if f in db], db, root, build_dir).items():
        if k is not None:
            with open(os.path.join(store, k), "w", encoding="utf-8") as out:
                out.write(os.path.relpath(f, root) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
