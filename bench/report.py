"""What every benchmark writes beside its numbers: the machine, the command; and the write."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

# The vector and matrix extensions that decide how fast the numeric kernels run.
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_bf16", "amx_int8", "amx_tile")  # fmt: skip


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and which of ``CPU_FLAGS`` it has (from /proc/cpuinfo; empty
    where the file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    # The first processor's block: every core of one machine has the same flags.
    fields = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    return fields.get("model name", ""), [flag for flag in CPU_FLAGS if flag in flags]


def machine(**extra: Any) -> dict[str, Any]:
    model, flags = cpu_model_and_flags()
    return {
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": model,
        "cpu_flags": flags,
        "python": platform.python_version(),
        **extra,
    }


def write_report(report: dict[str, Any], out: str | os.PathLike) -> None:
    """``report`` with the command that made it, as JSON at ``out``."""
    report = {"command": "python " + " ".join(sys.argv), **report}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
