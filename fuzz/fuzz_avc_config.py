"""atheris harness for the ``avc_config`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_avc_config [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("avc_config")
