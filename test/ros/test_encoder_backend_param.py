"""encoder_backend / onnx_model: node parameters -> MapperConfig, and their consistency check."""

from __future__ import annotations

import os

from radseg_ros.node import mapper_config
from radseg_ros.params import SPECS, NodeParams, check_consistency, validate


def _params(**kw) -> NodeParams:
    return NodeParams(**({k: s.default for k, s in SPECS.items()} | kw))


def test_backend_parameters_reach_the_mapper_config():
    cfg = mapper_config(_params(encoder_backend="onnxruntime", onnx_model="~/models/b.onnx"))
    assert cfg.encoder_backend == "onnxruntime" and cfg.onnx_model == os.path.expanduser("~/models/b.onnx")
    default = mapper_config(_params())
    assert default.encoder_backend == "torch" and default.onnx_model is None


def test_backend_values_are_checked():
    assert validate("encoder_backend", "tensorrt") is not None
    assert "onnx_model is read only with encoder_backend:=onnxruntime" in check_consistency(
        _params(onnx_model="b.onnx"))
    assert check_consistency(_params(encoder_backend="onnxruntime", onnx_model="b.onnx")) is None
