"""ML inference conformance suite: the run-stage engine.

Nothing imported from here at module level loads torch or TensorFlow; the build
stage (``conformance.export``, ``conformance.pack.build``) imports them lazily.
"""

__version__ = "0.1.0"

# `conformance.compare(model, inputs, ...)`: a user's own model (the package is callable).
from conformance import compare as compare  # noqa: E402
