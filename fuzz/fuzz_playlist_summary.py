"""atheris harness for the ``playlist_summary`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_playlist_summary [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("playlist_summary")
