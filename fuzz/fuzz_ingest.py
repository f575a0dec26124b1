"""atheris harness for the ``ingest`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_ingest [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("ingest")
