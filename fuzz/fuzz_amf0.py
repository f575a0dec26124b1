"""atheris harness for the ``amf0`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_amf0 [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("amf0")
