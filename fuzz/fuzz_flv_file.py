"""atheris harness for the ``flv_file`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_flv_file [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("flv_file")
