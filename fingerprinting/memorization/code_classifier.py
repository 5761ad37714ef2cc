"""Code vs natural-language classifier for 64-token samples (~150-350 characters).

Features: hashed character n-grams (n = 1..4) of the raw text, log(1 + count),
L2-normalised. The hash is defined here, not borrowed from a library, so the
shipped weights stay usable without scikit-learn or pickle:

    h = n;  for each code point c of the n-gram: h = h * M1 + c  (mod 2**64)
    bucket = ((h * M2) mod 2**64) >> (64 - bits)

Model: logistic regression (scikit-learn, L2, lbfgs) trained on snippets of
real text found on this machine: code (C headers, Perl modules, Python
standard-library sources, JavaScript, shell scripts, HTML/XML, config files)
against prose (Python's documentation topics, licence texts, Debian copyright
files, READMEs, Perl POD, standard-library docstrings). Snippets are held
back by source file (one fifth of the files, chosen by a hash of the path),
never by snippet.

The trained weights ship as ``helper_data/code_classifier/code_classifier.npz``
(float32 weights + intercept) with ``code_classifier.json`` (hashing
parameters, training counts, held-back accuracy). Rebuild with
``python -m fingerprinting.memorization.code_classifier --train``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fingerprinting.settings import HELPER_DATA

CLASSIFIER_DIR = HELPER_DATA / "code_classifier"
_M1 = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime as the polynomial base
_M2 = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio multiplier (Fibonacci hashing)
FORMAT_VERSION = 1


@dataclass
class CodeClassifier:
    """Logistic regression over hashed character n-grams; ``predict_proba`` = P(code)."""

    coef: np.ndarray  # (2**bits,) float32
    intercept: float
    bits: int = 16
    ngram_min: int = 1
    ngram_max: int = 4
    meta: dict | None = None

    def features(self, texts: Sequence[str]):
        """Sparse (n, 2**bits) CSR matrix of L2-normalised log(1 + n-gram counts)."""
        return hashed_ngrams(texts, self.bits, self.ngram_min, self.ngram_max)

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        X = self.features(texts)
        return np.asarray(X @ self.coef.astype(np.float64)).ravel() + self.intercept

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probability that each text is code (float64 array in [0, 1])."""
        z = self.decision_function(list(texts))
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, directory: str | Path, meta: dict) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(directory / "code_classifier.npz", coef=self.coef.astype(np.float32),
                            intercept=np.array([self.intercept], dtype=np.float64))
        meta = dict(meta, format_version=FORMAT_VERSION, bits=self.bits,
                    ngram_range=[self.ngram_min, self.ngram_max],
                    hash={"m1": int(_M1), "m2": int(_M2),
                          "rule": "h=n; h=h*m1+codepoint mod 2^64; bucket=(h*m2 mod 2^64)>>(64-bits)"},
                    features="log1p(count), L2-normalised per text",
                    output="probability of code = sigmoid(x . coef + intercept)")
        (directory / "code_classifier.json").write_text(json.dumps(meta, indent=1, sort_keys=True))


def _ngram_buckets(text: str, bits: int, lo: int, hi: int) -> np.ndarray:
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    out = []
    with np.errstate(over="ignore"):
        for n in range(lo, hi + 1):
            m = len(cps) - n + 1
            if m <= 0:
                break
            h = np.full(m, np.uint64(n))
            for k in range(n):
                h = h * _M1 + cps[k : k + m]
            out.append((h * _M2) >> np.uint64(64 - bits))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint64)


def hashed_ngrams(texts: Sequence[str], bits: int = 16, lo: int = 1, hi: int = 4):
    """CSR matrix of hashed character n-gram features (see the module docstring)."""
    from scipy import sparse

    indptr = [0]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for t in texts:
        b = _ngram_buckets(t, bits, lo, hi)
        cols, counts = np.unique(b, return_counts=True)
        vals = np.log1p(counts.astype(np.float64))
        norm = np.sqrt((vals**2).sum())
        if norm > 0:
            vals /= norm
        indices.append(cols.astype(np.int64))
        data.append(vals)
        indptr.append(indptr[-1] + len(cols))
    ind = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
    dat = np.concatenate(data) if data else np.zeros(0)
    return sparse.csr_matrix((dat, ind, np.asarray(indptr)), shape=(len(texts), 1 << bits))


_CACHE: dict[str, CodeClassifier] = {}


def load_classifier(directory: str | Path | None = None) -> CodeClassifier:
    """Load the shipped classifier (``helper_data/code_classifier``) or one saved elsewhere."""
    directory = Path(directory) if directory else CLASSIFIER_DIR
    key = str(directory.resolve())
    if key in _CACHE:
        return _CACHE[key]
    meta_path, npz_path = directory / "code_classifier.json", directory / "code_classifier.npz"
    if not meta_path.is_file() or not npz_path.is_file():
        raise FileNotFoundError(
            f"no code classifier in {directory} (need code_classifier.json and .npz); rebuild with "
            "python -m fingerprinting.memorization.code_classifier --train")
    meta = json.loads(meta_path.read_text())
    with np.load(npz_path, allow_pickle=False) as z:
        coef, intercept = z["coef"], float(z["intercept"][0])
    lo, hi = meta["ngram_range"]
    clf = CodeClassifier(coef, intercept, int(meta["bits"]), int(lo), int(hi), meta)
    _CACHE[key] = clf
    return clf


# ----------------------------------------------------------------- training data
CODE_SOURCES = {
    "c_header": (["/usr/include"], ("*.h",)),
    "perl": (["/usr/share/perl", "/usr/share/perl5", "/usr/lib/x86_64-linux-gnu/perl-base"], ("*.pm", "*.pl")),
    "python": ([], ("*.py",)),  # filled with the standard library path
    "javascript": (["/usr/share/javascript", "/usr/lib/node_modules", "/usr/share/nodejs"], ("*.js",)),
    "shell": (["/usr/bin", "/usr/sbin", "/usr/share", "/usr/lib", "/etc"], ("*.sh",)),
    "html_xml": (["/usr/share"], ("*.html", "*.xml", "*.xsl", "*.svg")),
    "config": (["/etc", "/usr/share"], ("*.conf", "*.cfg", "*.ini", "*.toml", "*.yaml", "*.yml", "*.json")),
}
PROSE_SOURCES = {
    "licence": (["/usr/share/common-licenses"], ("*",)),
    "copyright": (["/usr/share/doc"], ("copyright",)),
    "readme": (["/usr/share/doc"], ("README", "README.txt", "README.md", "*.txt")),
    "perl_pod": (["/usr/share/perl", "/usr/share/perl5"], ("*.pod",)),
}
MAX_FILES = 500  # per source kind, spread evenly over the sorted file list
SNIPPETS_PER_KIND = 1500


def _is_test_file(path: str) -> bool:
    return int(hashlib.sha1(path.encode()).hexdigest(), 16) % 5 == 0


def _find(roots: Iterable[str], patterns: Sequence[str]) -> list[str]:
    # every match is collected and sorted before thinning, so the choice never depends on
    # the order the file system lists directories in
    found: set[str] = set()
    for root in roots:
        r = Path(root)
        if not r.is_dir():
            continue
        for pat in patterns:
            for p in r.rglob(pat):
                if p.is_file() and not p.is_symlink() and "site-packages" not in p.parts:
                    found.add(str(p))
    files = sorted(found)
    if len(files) > MAX_FILES:  # spread over the list so no single package dominates
        idx = np.linspace(0, len(files) - 1, MAX_FILES).astype(int)
        files = [files[i] for i in idx]
    return files


def _read(path: str, limit: int = 200_000) -> str | None:
    try:
        data = Path(path).read_bytes()[:limit]
    except OSError:
        return None
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


_POD = re.compile(r"^=[a-zA-Z].*?^=cut\s*$", re.S | re.M)


def _strip_python_docstrings(src: str) -> str:
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        return src
    lines = src.splitlines(keepends=True)
    drop: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                drop.update(range(body[0].lineno - 1, body[0].end_lineno))
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def _snippets(text: str, k: int, seed_key: str) -> list[str]:
    """Up to ``k`` windows of 150-350 characters at seeded random offsets."""
    text = text.strip()
    if len(text) < 150:
        return []
    rng = np.random.default_rng(int(hashlib.sha1(seed_key.encode()).hexdigest()[:8], 16))
    out = []
    for _ in range(k):
        length = int(rng.integers(150, 351))
        start = int(rng.integers(0, max(1, len(text) - length + 1)))
        s = text[start : start + length]
        if len(s.split()) >= 5:
            out.append(s)
    return out


def _docstring_groups() -> list[tuple[str, str]]:
    import importlib
    import inspect
    import warnings

    from fingerprinting.zoo.corpus import DOC_MODULES

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in DOC_MODULES:
            try:
                mod = importlib.import_module(name)
            except Exception:
                continue
            docs = [inspect.getdoc(mod) or ""]
            for attr in sorted(vars(mod)):
                obj = getattr(mod, attr, None)
                if callable(obj) and getattr(obj, "__module__", None) == name:
                    docs.append(inspect.getdoc(obj) or "")
            # doctest lines (">>> x") are code inside prose; leave them out of the prose class
            text = "\n\n".join(d for d in docs if d)
            text = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith((">>>", "...")))
            out.append((f"docstrings:{name}", text))
    return out


def collect_training_text(progress: bool = True) -> list[tuple[str, str, str, str]]:
    """(label, kind, group, snippet) for every training snippet; group = source file."""
    import sysconfig

    rows: list[tuple[str, str, str, str]] = []
    stdlib = sysconfig.get_paths()["stdlib"]

    def add(label: str, kind: str, docs: list[tuple[str, str]]):
        docs = [(g, t) for g, t in docs if t and len(t.strip()) >= 150]
        if not docs:
            return
        per = max(1, -(-SNIPPETS_PER_KIND // len(docs)))
        n0 = len(rows)
        for group, text in docs:
            for s in _snippets(text, per, group)[:per]:
                rows.append((label, kind, group, s))
        if progress:
            print(f"  {label:5s} {kind:12s} files={len(docs):4d} snippets={len(rows) - n0}",
                  file=sys.stderr, flush=True)

    for kind, (roots, pats) in CODE_SOURCES.items():
        if kind == "python":
            files = [f for f in _find([stdlib], pats)
                     if "/test" not in f and "site-packages" not in f]
        else:
            files = _find(roots, pats)
        docs = []
        for f in files:
            text = _read(f)
            if text is None:
                continue
            if kind == "python":
                text = _strip_python_docstrings(text)
            elif kind == "perl":
                text = _POD.sub("", text)
            docs.append((f, text))
        add("code", kind, docs)

    for kind, (roots, pats) in PROSE_SOURCES.items():
        files = _find(roots, pats)
        docs = []
        for f in files:
            text = _read(f)
            if text is None:
                continue
            if kind == "readme" and f.endswith((".md",)) and "```" in text:
                text = re.sub(r"```.*?```", "", text, flags=re.S)  # fenced code is not prose
            docs.append((f, text))
        add("prose", kind, docs)
    try:
        from pydoc_data.topics import topics

        add("prose", "pydoc_topics",
            [(f"pydoc_topics:{k}", "\n".join(ln for ln in v.splitlines() if not ln.startswith("   ")))
             for k, v in sorted(topics.items())])
    except ImportError:
        pass
    add("prose", "docstrings", _docstring_groups())
    return rows


def train(out_dir: str | Path | None = None, *, bits: int = 16, C: float = 4.0,
          progress: bool = True) -> dict:
    """Rebuild the classifier from this machine's text; save it and return the metadata.

    Deterministic given the same files. Prints held-back accuracy (files
    held back by a hash of their path), overall and per source kind.
    """
    from sklearn.linear_model import LogisticRegression

    rows = collect_training_text(progress)
    labels = np.array([r[0] == "code" for r in rows], dtype=int)
    test = np.array([_is_test_file(r[2]) for r in rows])
    texts = [r[3] for r in rows]
    X = hashed_ngrams(texts, bits)
    lr = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
    lr.fit(X[~test], labels[~test])
    clf = CodeClassifier(lr.coef_.ravel().astype(np.float32), float(lr.intercept_[0]), bits)
    p = clf.predict_proba([texts[i] for i in np.flatnonzero(test)])
    pred = p >= 0.5
    acc = float((pred == labels[test]).mean())
    per_kind = {}
    kinds = np.array([r[1] for r in rows])
    for kind in sorted(set(kinds)):
        m = kinds[test] == kind
        if m.any():
            per_kind[kind] = {"n": int(m.sum()), "accuracy": round(float((pred[m] == labels[test][m]).mean()), 4)}
    train_acc = float(((clf.predict_proba([texts[i] for i in np.flatnonzero(~test)]) >= 0.5)
                       == labels[~test]).mean())
    meta = {
        "heldout_accuracy": round(acc, 4),
        "train_accuracy": round(train_acc, 4),
        "heldout_by_kind": per_kind,
        "n_train": int((~test).sum()), "n_heldout": int(test.sum()),
        "n_files": len({r[2] for r in rows}),
        "n_heldout_files": len({r[2] for r in rows if _is_test_file(r[2])}),
        "counts": {k: int((kinds == k).sum()) for k in sorted(set(kinds))},
        "holdout": "files with sha1(path) % 5 == 0",
        "C": C, "class_weight": "balanced", "snippet_chars": [150, 350],
    }
    clf.save(out_dir or CLASSIFIER_DIR, meta)
    _CACHE.clear()
    if progress:
        print(f"held-back accuracy {acc:.4f} on {meta['n_heldout']} snippets from "
              f"{meta['n_heldout_files']} files (train {train_acc:.4f})")
        for kind, v in per_kind.items():
            print(f"  {kind:14s} n={v['n']:5d} accuracy={v['accuracy']:.4f}")
    return meta


def main(argv: list[str] | None = None) -> int:
    """``python -m fingerprinting.memorization.code_classifier --train [--out DIR]``."""
    import argparse

    ap = argparse.ArgumentParser(description="code vs natural-language classifier")
    ap.add_argument("--train", action="store_true", help="rebuild from this machine's text")
    ap.add_argument("--out", default=None, help=f"output folder (default {CLASSIFIER_DIR})")
    ap.add_argument("texts", nargs="*", help="texts to classify (prints P(code))")
    args = ap.parse_args(argv)
    if args.train:
        train(args.out)
    for t in args.texts:
        print(f"{load_classifier(args.out).predict_proba([t])[0]:.3f}\t{t[:60]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
