"""atheris harness for the ``edge_playlist`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_edge_playlist [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("edge_playlist")
