"""atheris harness for the ``nginx_form`` target of fuzz/targets.py.

Run: ``.venv/bin/python -m fuzz.fuzz_nginx_form [libFuzzer options]`` (see fuzz/README.md).
"""

from fuzz.run import main

if __name__ == "__main__":
    main("nginx_form")
