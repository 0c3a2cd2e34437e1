"""ML inference conformance suite: the run-stage engine.

Nothing imported from here at module level loads torch or TensorFlow; the build
stage (``conformance.export``, ``conformance.pack.build``) imports them lazily.
"""

__version__ = "0.1.0"
