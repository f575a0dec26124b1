"""atheris harness for the ``aac_config`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_aac_config [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("aac_config")
