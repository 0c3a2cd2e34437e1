"""Your own model: `conformance compare` and its Python API (``compare``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conformance.usermodel.api import CompareResults


def compare(*args: Any, **kwargs: Any) -> CompareResults:
    """See conformance.usermodel.api.compare."""
    from conformance.usermodel.api import compare as run

    return run(*args, **kwargs)


__all__ = ["compare"]
