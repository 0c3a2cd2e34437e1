"""Operator-level conformance: every ONNX node case on every target (profile ``ops``).

``cases`` builds the case set (onnx's node cases plus its on-disk sets, content-addressed in a
cache folder); ``judge`` gives each case an honest category; ``execute`` runs the cases through
the run session's isolated target processes; ``scoring`` turns the records into per-op tables;
``known`` compares them with the reviewed lists of known failures; ``command`` is ``conformance
ops``.
"""
