"""atheris harness for the ``flv_tag`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_flv_tag [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("flv_tag")
