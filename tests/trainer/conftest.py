"""Fixtures the trainer tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def float64() -> Iterator[None]:
    """torch's default dtype float64 for one test (float32 again after it). Packed and plain
    runs are compared in float64: in float32 the packed matmuls' summation order differs
    from the plain model's and the difference grows chaotically through training and batch
    norm (1e-7 at step 50, 1e-3 by step 300); in float64 they agree to ~1e-14."""
    import torch  # lazy: the torch-free trainer tests (units, schema) collect without it

    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)
