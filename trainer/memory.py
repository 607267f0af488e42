"""How much device memory one packed member needs, and how much a GPU has.

Torch-free on purpose: the sweep planner sizes GPU packs in the driver, which
does not import torch. The estimate is deliberately generous (float32 bytes):
it is used to pick K as "as many members as fit", where running out of memory
costs a failed trial and a little headroom costs a few percent of throughput.
`benchmarks/bench_gpu.py` prints it beside the measured peak for each K.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from trainer.config import TrainConfig

# Parameter-sized float32 buffers per member: params, grads, Adam's m and v, per-element
# lr and decay, the update's temporaries, autograd's fresh grads and what the captured
# graph's private pool keeps of them.
PARAM_COPIES = 12
FIXED_BYTES = 1 << 30  # CUDA context, cuBLAS/cuDNN workspaces, allocator slack
HEADROOM = 0.85  # fraction of the rest the pack may use (fragmentation, eval peaks)
GPU_MEMORY_ENV = "WDSWEEP_GPU_MEMORY_GB"  # override when the planner's host has no GPU


def io_shapes(cfg: TrainConfig) -> tuple[int, int]:
    """(n_in, n_out) of the built-in tasks without importing them (they import torch)."""
    if cfg.task == "modular_add":
        return 2 * cfg.modulus, max(1, (cfg.modulus - 1).bit_length())
    return 2 * cfg.bits, cfg.bits


def param_count(cfg: TrainConfig, n_in: int, n_out: int) -> int:
    w = cfg.width
    block = 2 * (w * w + w) + (4 * w if cfg.batch_norm else 0)
    return n_in * w + w + cfg.depth * block + w * n_out + n_out


def member_bytes(cfg: TrainConfig) -> int:
    """Estimated device bytes per member of a pack (float32)."""
    n_in, n_out = io_shapes(cfg)
    params = PARAM_COPIES * param_count(cfg, n_in, n_out)
    data = (cfg.train_size + cfg.val_size + cfg.test_size) * (n_in + n_out)
    # saved activations and their grads: ~10 (b, width) tensors per block, a few more
    acts = 2 * cfg.batch_size * cfg.width * (10 * cfg.depth + 6)
    evals = 4 * max(cfg.val_size, cfg.test_size) * cfg.width  # no_grad forward, a few live
    return 4 * (params + data + acts + evals)


def fit_members(cfg: TrainConfig, device_bytes: int) -> int:
    """How many members of this shape fit on a device with `device_bytes` (>= 1)."""
    usable = (device_bytes - FIXED_BYTES) * HEADROOM
    return max(1, int(usable // member_bytes(cfg)))


def gpu_memory_bytes() -> int | None:
    """Total memory of this host's first GPU: $WDSWEEP_GPU_MEMORY_GB, else nvidia-smi;
    None when neither says (no GPU here: the caller keeps its own pack size)."""
    if os.environ.get(GPU_MEMORY_ENV):
        return int(float(os.environ[GPU_MEMORY_ENV]) * (1 << 30))
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout.split()
        return int(float(out[0])) << 20 if out else None  # MiB
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
