"""Fuzzing Streamit's peer-facing parsers: shared targets and seeds, atheris harnesses (see README.md)."""
