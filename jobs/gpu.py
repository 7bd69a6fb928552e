"""How much GPU memory this worker can offer, so it claims only jobs that fit.

One worker serves one GPU: the first device in ``CUDA_VISIBLE_DEVICES`` (an index or a UUID),
or device 0 when the variable is unset. An empty value or "-1" hides every GPU (a CPU worker).
We ask ``nvidia-smi`` for free memory: it is cheap and does not import torch (seconds, and
hundreds of MB) into the worker. Without ``nvidia-smi`` but with an NVIDIA driver loaded we
fall back to ``torch.cuda.mem_get_info``. Note: nvidia-smi numbers devices in PCI bus order;
set ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA agrees on hosts with mixed GPUs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path


def _visible_device() -> str | None:
    """The first visible device, "" when GPUs are hidden, None when unrestricted."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    first = visible.split(",")[0].strip()
    return "" if first in ("", "-1") else first


def _from_nvidia_smi(device: str | None) -> int | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,uuid,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]
    for index, uuid, free in rows:
        if device is None or device in (index, uuid):
            try:
                return int(float(free))
            except ValueError:
                return None
    return 0


def _from_torch() -> int | None:
    if importlib.util.find_spec("torch") is None or not Path("/proc/driver/nvidia").exists():
        return None
    import torch  # lazy: only on GPU hosts without nvidia-smi

    if not torch.cuda.is_available():
        return 0
    free, _total = torch.cuda.mem_get_info(0)
    return int(free // 2**20)


def detect_gpu_mem_mb() -> int:
    """Free memory (MiB) of this worker's GPU; 0 for a CPU-only worker."""
    device = _visible_device()
    if device == "":
        return 0
    found = _from_nvidia_smi(device)
    if found is None:
        found = _from_torch()
    return found or 0
