"""atheris harness for the ``amf3`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_amf3 [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("amf3")
