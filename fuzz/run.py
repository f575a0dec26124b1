"""Run one fuzz target under atheris (libFuzzer), seeded from the captured fixtures.

    .venv/bin/python -m fuzz.run chunk -max_total_time=60
    .venv/bin/python -m fuzz.fuzz_chunk -max_total_time=60       # the same, through the per-target module
    .venv/bin/python -m fuzz.run chunk fuzz/.artifacts/chunk/crash-…   # replay one input

The seeds of the target are written to ``fuzz/.corpus/<target>/`` (libFuzzer adds what it finds there),
crashes go to ``fuzz/.artifacts/<target>/``.  Arguments after the target name go to libFuzzer unchanged;
when one of them names an existing file, libFuzzer runs just those files (no corpus is added).

Streamit's modules are imported under atheris' instrumentation, so libFuzzer sees their branch coverage.
Any exception other than a ``RemoteProtocolError`` escaping the target is reported as a crash.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / ".corpus"
ARTIFACTS_DIR = FUZZ_DIR / ".artifacts"
DEFAULT_OPTIONS = ("-rss_limit_mb=2048", "-timeout=20", "-print_final_stats=1")
"""A slow unit (20 s) or 2 GiB of RSS are crashes too: a peer must not be able to cause either."""


def write_seeds(name: str, seeds: tuple[bytes, ...]) -> Path:
    """Put ``seeds`` into the target's corpus directory (named by content, so reruns add nothing)."""
    corpus = CORPUS_DIR / name
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        path = corpus / f"seed-{hashlib.sha1(seed).hexdigest()}"
        if not path.exists():
            path.write_bytes(seed)
    return corpus


def libfuzzer_argv(name: str, extra: list[str], corpus: Path, max_len: int = 16384) -> list[str]:
    """The argv given to libFuzzer: defaults, the artifact prefix, the caller's options, the corpus."""
    artifacts = ARTIFACTS_DIR / name
    artifacts.mkdir(parents=True, exist_ok=True)
    given = {a.split("=")[0] for a in extra}
    defaults = (*DEFAULT_OPTIONS, f"-max_len={max_len}")
    options = [arg for arg in defaults if arg.split("=")[0] not in given]
    argv = [sys.argv[0], *options, f"-artifact_prefix={artifacts}/", *extra]
    replaying = any(not arg.startswith("-") and Path(arg).is_file() for arg in extra)
    if not replaying and not any(not arg.startswith("-") for arg in extra):
        argv.append(str(corpus))
    return argv


def main(name: str, extra: list[str] | None = None) -> None:
    """Fuzz target ``name`` with atheris until libFuzzer stops (options in ``extra`` or ``sys.argv``)."""
    import atheris

    with atheris.instrument_imports(include=["streamit", "fuzz.targets"]):
        from fuzz.targets import TARGETS, run_target

    if name not in TARGETS:
        raise SystemExit(f"unknown target {name!r}; one of: {', '.join(sorted(TARGETS))}")
    target = TARGETS[name]
    corpus = write_seeds(name, target.seeds())

    def test_one_input(data: bytes) -> None:
        run_target(target, data)

    options = list(sys.argv[1:] if extra is None else extra)
    atheris.Setup(libfuzzer_argv(name, options, corpus, target.max_len), test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    target_name = sys.argv[1]
    main(target_name, sys.argv[2:])
