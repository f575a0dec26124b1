"""atheris harness for the ``connection`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_connection [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("connection")
