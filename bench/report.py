"""What every benchmark writes beside its numbers: the machine, the command; and the write."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any


def machine(**extra: Any) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        **extra,
    }


def write_report(report: dict[str, Any], out: str | os.PathLike) -> None:
    """``report`` with the command that made it, as JSON at ``out``."""
    report = {"command": "python " + " ".join(sys.argv), **report}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
