"""atheris harness for the ``avcc`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_avcc [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("avcc")
