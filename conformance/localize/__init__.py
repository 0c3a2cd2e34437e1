"""Where a target's outputs go wrong: the first diverging node and a minimal reproducer.

``nodes`` holds the graph helpers (one node evaluated alone, outputs marked), ``localize`` the
per-node table (the error each node's output carries against the float64 reference, inherited
plus introduced, and the error the node introduces when fed the target's own inputs), and
``repro`` the smallest failing subgraph saved as an ONNX backend test-case folder.
"""
