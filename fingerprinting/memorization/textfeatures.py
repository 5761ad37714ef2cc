"""Text-only memorization features of a file of texts (``fplake memorization features``).

:func:`features_file` reads a Parquet, JSON Lines or CSV file, computes
:func:`fingerprinting.memorization.features.text_features` (templating, code
vs natural language, Huffman length) for one text column in batches, and
writes a Parquet file with every input column followed by the feature
columns. Rows whose text is null keep null features.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fingerprinting.errors import FingerprintLakeError

BATCH_SIZE = 10_000
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".csv": "csv", ".tsv": "tsv"}


class TextFeaturesError(FingerprintLakeError):
    """The input of the text-features command cannot be used (missing file or column, empty, unknown format)."""


def _format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst") and len(suffixes) > 1:
        suffixes = suffixes[:-1]  # e.g. texts.csv.gz: polars reads the compressed file
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise TextFeaturesError(f"{path}: unknown file type {path.suffix or '(no suffix)'!r}; "
                                f"expected one of {', '.join(sorted(FORMATS))}")
    return fmt


def read_table(path: str | Path) -> pl.DataFrame:
    """The input file as a polars frame (Parquet, JSON Lines or CSV/TSV by suffix), with clear errors."""
    p = Path(path)
    fmt = _format(p)
    if not p.is_file():
        raise TextFeaturesError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise TextFeaturesError(f"{p}: the file is empty")
    try:
        if fmt == "parquet":
            return pl.read_parquet(p)
        if fmt == "jsonl":
            return pl.read_ndjson(p)
        # every CSV column as text first would lose numbers; infer over the whole file instead
        return pl.read_csv(p, separator="\t" if fmt == "tsv" else ",", infer_schema_length=None)
    except pl.exceptions.NoDataError as e:
        raise TextFeaturesError(f"{p}: the file is empty ({e})") from e
    except (pl.exceptions.PolarsError, OSError) as e:
        raise TextFeaturesError(f"{p}: cannot be read as {fmt}: {type(e).__name__}: {e}") from e


def _text_series(df: pl.DataFrame, text_column: str, path: Path) -> pl.Series:
    if text_column not in df.columns:
        raise TextFeaturesError(f"{path}: no column {text_column!r}; its columns are: {', '.join(df.columns)}")
    s = df.get_column(text_column)
    if s.dtype == pl.String:
        return s
    if s.dtype.is_nested() or s.dtype == pl.Binary:
        raise TextFeaturesError(f"{path}: column {text_column!r} holds {s.dtype}, not text")
    return s.cast(pl.String)  # e.g. a CSV column of digits read as integers


def _feature_batch(texts: list[str | None], schema: pa.Schema, classifier) -> pa.Table:
    """Features of one batch; null texts get null features (the kernel only sees real texts)."""
    from fingerprinting.memorization.features import text_features

    idx = [i for i, t in enumerate(texts) if t is not None]
    computed = text_features([texts[i] for i in idx], classifier=classifier)
    if len(idx) == len(texts):
        return computed.cast(schema)
    cols = []
    for f in schema:
        vals = [None] * len(texts)
        for i, v in zip(idx, computed.column(f.name).to_pylist(), strict=True):
            vals[i] = v
        cols.append(pa.array(vals, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def features_file(input_path: str | Path, text_column: str, output_path: str | Path, *,
                  batch_size: int = BATCH_SIZE, classifier=None, progress: bool | None = None) -> dict:
    """Compute the text-only features of ``text_column`` in ``input_path`` and write ``output_path`` (Parquet).

    The output keeps every input column (ids and all) in order, then the
    feature columns of :func:`~fingerprinting.memorization.features.text_features`
    (an input column of the same name is replaced). Null texts get null
    features and are counted. The file is written to a temporary sibling and
    renamed, so a reader never sees half of it. ``progress`` defaults to a
    tqdm bar when stderr is a terminal.

    Returns counts: ``rows``, ``texts`` (non-null), ``null_texts``,
    ``templating``, ``code``, ``batches``, plus ``input``, ``output`` and
    ``replaced_columns``. Raises :class:`TextFeaturesError` for a missing,
    empty or unreadable file or a missing column.
    """
    from tqdm.auto import tqdm

    from fingerprinting.memorization.code_classifier import load_classifier
    from fingerprinting.memorization.features import text_features

    src, dst = Path(input_path), Path(output_path)
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    df = read_table(src)
    texts = _text_series(df, text_column, src)
    if df.height == 0:
        raise TextFeaturesError(f"{src}: the file has columns ({', '.join(df.columns)}) but no rows")
    clf = classifier if classifier is not None else load_classifier()
    feature_schema = text_features([], classifier=clf).schema
    replaced = [c for c in df.columns if c in feature_schema.names]
    keep = df.drop(replaced) if replaced else df
    if progress is None:
        progress = sys.stderr.isatty()

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    counts = {"rows": df.height, "texts": 0, "null_texts": 0, "templating": 0, "code": 0, "batches": 0}
    writer = None
    try:
        with tqdm(total=df.height, desc="text features", unit="text", disable=not progress) as bar:
            for start in range(0, df.height, batch_size):
                batch_texts = texts.slice(start, batch_size).to_list()
                feats = _feature_batch(batch_texts, feature_schema, clf)
                part = keep.slice(start, batch_size).to_arrow()
                for f in feature_schema:
                    part = part.append_column(f, feats.column(f.name))
                if writer is None:
                    writer = pq.ParquetWriter(tmp, part.schema)
                writer.write_table(part.cast(writer.schema))
                counts["null_texts"] += sum(t is None for t in batch_texts)
                counts["templating"] += int(pc.sum(feats.column("is_templating")).as_py() or 0)
                counts["code"] += int(pc.sum(feats.column("is_code")).as_py() or 0)
                counts["batches"] += 1
                bar.update(len(batch_texts))
        writer.close()
        writer = None
        tmp.replace(dst)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    counts["texts"] = counts["rows"] - counts["null_texts"]
    return {"input": str(src), "output": str(dst), **counts, "replaced_columns": replaced}
