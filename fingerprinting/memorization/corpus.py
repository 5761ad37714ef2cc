"""Corpora for memorization: read documents, cut them into 64-token samples.

:func:`read_documents` reads a text file, a folder of text files
(recursive), JSONL or Parquet. :func:`make_samples` tokenises every document
(no special tokens), concatenates each document's tokens and cuts 64-token
windows (by stride or at seeded random offsets). Sample ids are stable:
sha1 of corpus name, document id, offset and tokenizer identity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa


class CorpusError(ValueError):
    """A corpus file could not be read; the message names the file."""


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    source: str  # file the document came from


_TEXT_SUFFIXES_SKIP = {".parquet", ".jsonl", ".ndjson"}


def _read_text_file(path: Path, doc_id: str) -> Document:
    data = path.read_bytes()
    if not data.strip():
        raise CorpusError(f"{path}: file is empty")
    if b"\x00" in data:
        raise CorpusError(f"{path}: binary file (contains NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return Document(doc_id, text, str(path))


def _read_jsonl(path: Path, text_column: str) -> Iterator[Document]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc})") from exc
    if not raw.strip():
        raise CorpusError(f"{path}: file is empty")
    if b"\x00" in raw:
        raise CorpusError(f"{path}: binary file (contains NUL bytes), not JSONL")
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    seen_column = False
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{no}: invalid JSON ({exc.msg})") from exc
        if not isinstance(rec, dict) or text_column not in rec:
            if not seen_column:
                keys = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
                raise CorpusError(f"{path}:{no}: missing column {text_column!r} (has {keys})")
            continue
        seen_column = True
        text = rec[text_column]
        if not isinstance(text, str):
            raise CorpusError(f"{path}:{no}: column {text_column!r} is not a string")
        doc_id = str(rec.get("id", rec.get("doc_id", f"{path.name}:{no}")))
        yield Document(doc_id, text, str(path))


def _read_parquet(path: Path, text_column: str) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise CorpusError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    if text_column not in names:
        raise CorpusError(f"{path}: missing column {text_column!r} (has {names})")
    id_col = next((c for c in ("doc_id", "id") if c in names), None)
    cols = [text_column] + ([id_col] if id_col else [])
    row = 0
    for batch in pf.iter_batches(columns=cols):
        texts = batch.column(text_column).to_pylist()
        ids = batch.column(id_col).to_pylist() if id_col else [None] * len(texts)
        for text, ident in zip(texts, ids, strict=True):
            if text is not None:
                yield Document(str(ident) if ident is not None else f"{path.name}:{row}", text,
                               str(path))
            row += 1
    if row == 0:
        raise CorpusError(f"{path}: Parquet file has no rows")


def _read_file(path: Path, text_column: str, doc_id: str) -> Iterator[Document]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _read_jsonl(path, text_column)
    elif suffix == ".parquet":
        yield from _read_parquet(path, text_column)
    else:
        yield _read_text_file(path, doc_id)


def read_documents(
    path: str | Path,
    text_column: str = "text",
    *,
    problems: list | Callable[[str, str], None] | None = None,
) -> Iterator[Document]:
    """Yield documents from a text file, a folder (recursive), JSONL or Parquet.

    * text file: one document, ``doc_id`` = file name;
    * folder: every regular file below it, sorted by relative path (``doc_id``
      = relative path; JSONL / Parquet files inside are read as such);
    * ``.jsonl`` / ``.ndjson``: one document per line from key ``text_column``
      (``doc_id`` from ``id`` / ``doc_id`` when present);
    * ``.parquet``: one document per row of column ``text_column``.

    Raises :class:`CorpusError` naming the file for an empty file, a binary
    or non-UTF-8 file, or a missing column. In a folder, a bad file does not
    stop the scan: ``(file, message)`` is appended to ``problems`` (a list) or
    passed to it (a callable); without ``problems`` the error is raised.
    """
    root = Path(path)
    if not root.exists():
        raise CorpusError(f"{root}: no such file or folder")
    if root.is_file():
        yield from _read_file(root, text_column, root.name)
        return
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise CorpusError(f"{root}: folder holds no files")
    for f in files:
        rel = f.relative_to(root).as_posix()
        try:
            # materialise per file so a bad line is reported before any of its documents
            docs = list(_read_file(f, text_column, rel))
        except CorpusError as exc:
            if problems is None:
                raise
            if callable(problems):
                problems(str(f), str(exc))
            else:
                problems.append((str(f), str(exc)))
            continue
        yield from docs


# ----------------------------------------------------------------- samples
def tokenizer_identity(tokenizer) -> str:
    """A short hash of the tokenizer's vocabulary and class (part of every sample id)."""
    h = hashlib.sha1()
    h.update(type(tokenizer).__name__.encode())
    try:
        vocab = tokenizer.get_vocab()
        for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]):
            h.update(f"{i}:{tok}\n".encode())
    except Exception:  # tokenizers without get_vocab: fall back to the name
        h.update(str(getattr(tokenizer, "name_or_path", "")).encode())
    return h.hexdigest()[:16]


def sample_id(corpus: str, doc_id: str, offset: int, tok_identity: str) -> str:
    """sha1(corpus, doc_id, offset, tokenizer identity), first 16 hex digits."""
    key = "\x1f".join([corpus, doc_id, str(offset), tok_identity])
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


@dataclass
class SampleSet:
    """64-token samples cut from a corpus, plus the whole tokenised corpus."""

    corpus: str
    token_ids: np.ndarray  # (n, sample_len) int64
    sample_id: list[str]
    doc_id: list[str]
    offset: np.ndarray  # token offset of the window inside its document
    text: list[str]
    corpus_tokens: np.ndarray  # all documents' tokens concatenated (for duplicate counts)
    prompt_len: int = 32
    prompt_text: list[str] = field(default_factory=list)
    continuation_text: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (doc_id, reason)
    tokenizer_identity: str = ""

    def __len__(self) -> int:
        return len(self.sample_id)

    def to_table(self) -> pa.Table:
        """Columns: sample_id, corpus, doc_id, offset, token_ids (list<int64>), text,
        prompt_text, continuation_text."""
        n = len(self)
        flat = pa.array(self.token_ids.reshape(-1), pa.int64())
        width = self.token_ids.shape[1] if self.token_ids.ndim == 2 else 0
        offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32), pa.int32())
        return pa.table({
            "sample_id": pa.array(self.sample_id, pa.string()),
            "corpus": pa.array([self.corpus] * n, pa.string()),
            "doc_id": pa.array(self.doc_id, pa.string()),
            "offset": pa.array(self.offset, pa.int64()),
            "token_ids": pa.ListArray.from_arrays(offsets, flat),
            "text": pa.array(self.text, pa.string()),
            "prompt_text": pa.array(self.prompt_text, pa.string()),
            "continuation_text": pa.array(self.continuation_text, pa.string()),
        })


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def make_samples(
    documents: Iterable[Document],
    tokenizer,
    *,
    corpus: str,
    stride: int = 64,
    sample_len: int = 64,
    max_samples: int | None = None,
    seed: int = 0,
    mode: str = "stride",
    prompt_len: int = 32,
) -> SampleSet:
    """Cut ``sample_len``-token windows from tokenised documents.

    Each document is tokenised on its own without special tokens; windows
    never cross documents. ``mode="stride"``: offsets 0, stride, 2*stride, ...
    while a full window fits; ``mode="random"``: every stride-spaced offset
    is a candidate and ``max_samples`` of all candidates are drawn without
    replacement with ``numpy.random.default_rng(seed)`` (then sorted by
    document order). In stride mode ``max_samples`` keeps the first ones.
    Documents shorter than ``sample_len`` tokens give no sample and are listed
    in ``skipped`` with the reason. ``corpus_tokens`` holds every document's
    tokens (including the short ones) concatenated.
    """
    if mode not in ("stride", "random"):
        raise ValueError(f"mode must be 'stride' or 'random', got {mode!r}")
    if stride < 1 or sample_len < 2:
        raise ValueError("stride must be >= 1 and sample_len >= 2")
    tok_id = tokenizer_identity(tokenizer)
    all_tokens: list[np.ndarray] = []
    candidates: list[tuple[int, int]] = []  # (document index, offset)
    doc_tokens: list[np.ndarray] = []
    doc_ids: list[str] = []
    skipped: list[tuple[str, str]] = []
    for doc in documents:
        ids = np.asarray(_encode(tokenizer, doc.text), dtype=np.int64)
        all_tokens.append(ids)
        if len(ids) < sample_len:
            skipped.append((doc.doc_id, f"shorter than {sample_len} tokens ({len(ids)})"))
            continue
        k = len(doc_tokens)
        doc_tokens.append(ids)
        doc_ids.append(doc.doc_id)
        if mode == "stride" and max_samples is not None and len(candidates) >= max_samples:
            continue  # keep tokenising: corpus_tokens must cover the whole corpus
        candidates.extend((k, off) for off in range(0, len(ids) - sample_len + 1, stride))
    if mode == "stride" and max_samples is not None:
        candidates = candidates[:max_samples]
    if mode == "random" and max_samples is not None and len(candidates) > max_samples:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(candidates), size=max_samples, replace=False))
        candidates = [candidates[i] for i in pick]
    rows = [doc_tokens[k][off : off + sample_len] for k, off in candidates]
    token_ids = np.stack(rows) if rows else np.zeros((0, sample_len), dtype=np.int64)
    decode = tokenizer.decode
    texts = [decode(r.tolist()) for r in token_ids]
    prompt_text = [decode(r[:prompt_len].tolist()) for r in token_ids]
    cont_text = [decode(r[prompt_len:].tolist()) for r in token_ids]
    return SampleSet(
        corpus=corpus,
        token_ids=token_ids.astype(np.int64),
        sample_id=[sample_id(corpus, doc_ids[k], off, tok_id) for k, off in candidates],
        doc_id=[doc_ids[k] for k, _ in candidates],
        offset=np.array([off for _, off in candidates], dtype=np.int64),
        text=texts,
        corpus_tokens=np.concatenate(all_tokens) if all_tokens else np.zeros(0, dtype=np.int64),
        prompt_len=prompt_len,
        prompt_text=prompt_text,
        continuation_text=cont_text,
        skipped=skipped,
        tokenizer_identity=tok_id,
    )
