"""Import a script of examples/ or benchmarks/ as a module, so tests can call its functions."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_script(path: Path) -> ModuleType:
    """The module in ``path`` (relative to the repository root), freshly executed."""
    spec = importlib.util.spec_from_file_location(f"script_{path.parent.name}_{path.stem}", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
