"""Bad checkpoints get a clear error naming the model."""

import json
import shutil

import numpy as np
import pytest
import torch

from fingerprinting.loading import ModelLoadError, ModelSource, load_model
from fingerprinting.methods import FingerprintError, make_method
from tests.conftest import STORIES


@pytest.fixture
def stories_copy(tmp_path):
    dst = tmp_path / "stories"
    shutil.copytree(STORIES, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def test_loads_offline_on_cpu_float32():
    lm = load_model("s", str(STORIES))
    assert lm.kind == "causal" and lm.dtype == torch.float32
    assert lm.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert lm.info["n_parameters"] > 200_000


def test_missing_path():
    with pytest.raises(ModelLoadError, match="'ghost'.*does not exist"):
        load_model("ghost", "/no/such/model")


def test_no_config(stories_copy):
    (stories_copy / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model("m1", str(stories_copy))


def test_malformed_config(stories_copy):
    (stories_copy / "config.json").write_text("{ not json")
    with pytest.raises(ModelLoadError, match="'m1'.*not valid JSON"):
        load_model("m1", str(stories_copy))


def test_truncated_weights(stories_copy):
    data = (stories_copy / "model.safetensors").read_bytes()
    (stories_copy / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError, match="'broken'"):
        load_model("broken", str(stories_copy))


def test_pickle_only_refused_by_default(stories_copy):
    from safetensors.torch import load_file

    sd = load_file(stories_copy / "model.safetensors")
    torch.save(sd, stories_copy / "pytorch_model.bin")
    (stories_copy / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="'p'.*pickle"):
        load_model("p", str(stories_copy))
    lm = load_model("p", str(stories_copy), allow_pickle=True)  # an explicit opt-in loads it
    assert lm.kind == "causal"


def test_nan_weights_rejected(stories_copy):
    from safetensors.torch import load_file, save_file

    sd = load_file(stories_copy / "model.safetensors")
    key = next(k for k in sd if sd[k].ndim == 2)
    sd[key][0, 0] = float("nan")
    save_file(sd, stories_copy / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="NaN"):
        load_model("nanmodel", str(stories_copy))


def test_broken_tokenizer(stories_copy):
    for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json"):
        (stories_copy / name).unlink()
    with pytest.raises(ModelLoadError, match="'notok'.*tokenizer"):
        load_model("notok", str(stories_copy))
    # weight methods do not need one
    lm = load_model("notok", str(stories_copy), need_tokenizer=False)
    assert make_method("weight_spectrum").fingerprint(lm).dim == 48


def test_trust_remote_code_stays_off(stories_copy):
    cfg = json.loads((stories_copy / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (stories_copy / "config.json").write_text(json.dumps(cfg))
    marker = stories_copy / "executed"
    (stories_copy / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    try:
        load_model("remote", str(stories_copy))
    except ModelLoadError:
        pass
    assert not marker.exists()


def _tiny_bert(tmp_path, with_head):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForMaskedLM, BertModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "of", "and", "to", "in", "is"]
    words += [f"w{i}" for i in range(52)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   mask_token="[MASK]", cls_token="[CLS]", sep_token="[SEP]")
    cfg = BertConfig(vocab_size=len(words), hidden_size=48, num_hidden_layers=1, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    model = (BertForMaskedLM if with_head else BertModel)(cfg)
    path = tmp_path / ("mlm" if with_head else "enc")
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_encoder_without_lm_head(tmp_path):
    lm = load_model("enc", str(_tiny_bert(tmp_path, with_head=False)))
    assert lm.kind == "base"
    with pytest.raises(FingerprintError, match="'enc' has no LM head"):
        make_method("input_output").fingerprint(lm)
    assert make_method("weight").fingerprint(lm).dim == 2500


def test_masked_lm_input_output(tmp_path):
    lm = load_model("mlm", str(_tiny_bert(tmp_path, with_head=True)))
    assert lm.kind == "masked"
    fp = make_method("input_output").fingerprint(lm)
    assert np.all(np.isfinite(fp.vector)) and fp.dim == 40


def test_source_parsing():
    assert ModelSource.parse("hf://org/name@v1").hub_id == "org/name"
    assert ModelSource.parse("hf://org/name@v1").revision == "v1"
    g = ModelSource.parse("/models/smol/model.Q8_0.gguf")
    assert g.path == "/models/smol" and g.gguf_file == "model.Q8_0.gguf"
