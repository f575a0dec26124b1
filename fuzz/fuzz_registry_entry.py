"""atheris harness for the ``registry_entry`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_registry_entry [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("registry_entry")
