"""What every benchmark writes: the machine it ran on and its figures as JSON in bench/results/."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def machine() -> dict[str, Any]:
    """CPUs, Python and load average: the figures mean little without them."""
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0],
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def write(figures: dict[str, Any], directory: Path, name: str) -> Path:
    """``<name>-<time>.json`` and a copy as ``<name>-latest.json``; returns the first."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    (directory / f"{name}-latest.json").write_text(path.read_text())
    return path
