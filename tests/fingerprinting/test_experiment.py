"""Experiment configs in the original format; every invalid case names its field."""

import json

import pytest

from fingerprinting.experiment import ConfigError, load_config, parse_config

GOOD = {"models": ["27", "35", "193"], "methods": ["input_output"],
        "method_args": {"input_output": {"n0": 40, "target_tokens_path": "helper_data/io_tokens/target_tokens.txt",
                                         "probe_tokens_path": "helper_data/io_tokens/probe_tokens.txt"}},
        "metrics": ["l1"]}


def test_original_format_parses():
    cfg = parse_config(GOOD)
    assert cfg.models == ["27", "35", "193"] and cfg.metrics == ["l1"]
    assert cfg.instances()["input_output"].config["n0"] == 40


def _with(**changes):
    obj = json.loads(json.dumps(GOOD))
    for k, v in changes.items():
        if v is None:
            obj.pop(k)
        else:
            obj[k] = v
    return obj


@pytest.mark.parametrize("obj,field", [
    (_with(models=None), "models"),
    (_with(models="27"), "models"),
    (_with(models=[]), "models"),
    (_with(models=[27.5]), "models[0]"),
    (_with(methods=["input_outpt"]), "methods"),
    (_with(metrics=["l2"]), "metrics"),
    (_with(method_args={"input_output": {"n0": "40"}}), "method_args.input_output.n0"),
    (_with(method_args={"input_output": {"probe_tokens_path": "missing.txt"}}), "method_args.input_output.probe_tokens_path"),
    (_with(method_args={"weight": {}}), "method_args.weight"),
    (_with(method_args=[1]), "method_args"),
    (_with(metrcs=["l1"]), "metrcs"),
    ([1, 2], "JSON object"),
])
def test_invalid_configs_name_the_field(obj, field):
    with pytest.raises(ConfigError) as exc:
        parse_config(obj)
    assert field in str(exc.value)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{models: [")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")
