"""The conformance pack: build it (build stage), load and hash it (run stage)."""
