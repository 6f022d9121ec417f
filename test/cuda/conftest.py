"""Device for the ``cuda`` tests: a CUDA GPU, or the CPU when the device suite's dry run asks for it.

``RADSEG_CUDA_TESTS_DEVICE`` (set by benchmarks/device_suite.sh): ``cuda`` (default) or ``cuda:N`` skips
every test without CUDA, as in CI; ``cpu`` runs the same tests on the CPU so they cannot rot where no GPU
is lent. Checks that only mean something on a GPU (copies between host and device) skip on the CPU.
"""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(scope="session")
def device() -> torch.device:
    want = os.environ.get("RADSEG_CUDA_TESTS_DEVICE", "cuda")
    if want == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (benchmarks/device_suite.sh runs these on a GPU, --device cpu on the CPU)")
    return torch.device(want)


@pytest.fixture(autouse=True)
def exact_float32():
    """Compare against the CPU in true float32: no TF32 in matmuls or convolutions."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
