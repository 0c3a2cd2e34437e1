"""How outputs are judged: tolerance policy per precision and error statistics.

The package is also the Python API's entry point for a user's own model: ``conformance.compare(
model, inputs, targets=..., tolerance=...)`` (issue 12's name) calls conformance.usermodel.compare.
A plain function named ``compare`` in ``conformance/__init__.py`` would be replaced by this
package as soon as anything imports ``conformance.compare.judge``, so the package itself is made
callable.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from conformance.usermodel import compare

        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
