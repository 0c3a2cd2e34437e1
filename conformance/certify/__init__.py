"""Vendor self-certification: profiles -> bundle -> offline verification -> scoreboard.

`conformance certify` runs what a profile requires on one target and writes a (signed) bundle;
`conformance verify` checks a bundle offline without trusting it; `conformance scoreboard`
compares verified bundles; `conformance keygen` makes a vendor's Ed25519 key pair.
"""
