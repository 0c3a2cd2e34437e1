"""Where the spec lives and how its data files are read."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

# The spec folder sits beside the packages in the source tree (editable installs, CI);
# CONFORMANCE_SPEC_DIR points elsewhere, e.g. at a spec published by a standards body.
SPEC_DIR = Path(
    os.environ.get("CONFORMANCE_SPEC_DIR", Path(__file__).resolve().parent.parent / "spec")
)
PACK_DIR = SPEC_DIR / "pack"


@lru_cache(maxsize=None)
def load_json(name: str, spec_dir: Path = SPEC_DIR) -> dict[str, Any]:
    with open(spec_dir / name, encoding="utf-8") as handle:
        return json.load(handle)
