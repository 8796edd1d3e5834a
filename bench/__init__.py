"""Benchmarks: the bridge against the bare I/O floor, measured in the same run on the same machine."""
