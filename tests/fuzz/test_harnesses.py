"""The atheris harnesses start, load their seeds and fuzz; the campaign script reads libFuzzer's report."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz.run import libfuzzer_argv, write_seeds
from fuzz.targets import TARGETS

from fuzz import campaign
from tests.conftest import IN_CI

REPO = Path(__file__).resolve().parents[2]
LIBFUZZER_OUTPUT = """\
INFO: Seed: 1234
#2\tINITED cov: 40 ft: 41 corp: 1/1b exec/s: 0 rss: 120Mb
#512\tpulse  cov: 120 ft: 500 corp: 90/4Kb lim: 40 exec/s: 256 rss: 122Mb
#1024\tNEW    cov: 126 ft: 599 corp: 131/8Kb lim: 60 exec/s: 512 rss: 124Mb L: 7/60 MS: 1 ChangeBit-
Done 1024 runs in 2 second(s)
stat::number_of_executed_units: 1024
stat::average_exec_per_sec:     512
stat::new_units_added:          130
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              124
"""


def test_every_target_has_a_harness_module() -> None:
    for name in TARGETS:
        module = REPO / "fuzz" / f"fuzz_{name}.py"
        assert module.is_file(), module
        assert f'main("{name}")' in module.read_text()


def test_campaign_reads_libfuzzer_statistics() -> None:
    run = campaign.parse_output("chunk", 2.0, 0, LIBFUZZER_OUTPUT, [])
    assert (run.executions, run.executions_per_second) == (1024, 512)
    assert (run.new_units, run.peak_rss_mb) == (130, 124)
    assert (run.coverage, run.features, run.corpus) == (126, 599, 131)
    table = campaign.markdown([run])
    assert "| chunk | 2 | 1,024 | 512 | 126 | 599 | 131 | 0 |" in table


def test_libfuzzer_gets_the_corpus_unless_files_are_replayed(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    argv = libfuzzer_argv("amf0", ["-runs=10"], corpus)
    assert argv[-1] == str(corpus) and "-runs=10" in argv
    assert any(arg.startswith("-artifact_prefix=") for arg in argv)
    crash = tmp_path / "crash-1"
    crash.write_bytes(b"\x02")
    assert str(corpus) not in libfuzzer_argv("amf0", [str(crash)], corpus)
    # Options given by the caller replace the defaults of the same name.
    assert [a for a in libfuzzer_argv("amf0", ["-timeout=5"], corpus) if a.startswith("-timeout")] == [
        "-timeout=5"
    ]


def test_seeds_are_written_once_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fuzz.run.CORPUS_DIR", tmp_path)
    seeds = TARGETS["amf0"].seeds()
    corpus = write_seeds("amf0", seeds)
    write_seeds("amf0", seeds)
    assert sorted(p.read_bytes() for p in corpus.iterdir()) == sorted(set(seeds))


def test_an_atheris_harness_fuzzes_its_seeds(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        message = "atheris is not installed (pip install -e '.[test]' on Linux x86-64 brings it)"
        if IN_CI:
            pytest.fail(message + "; under CI it must be present")
        pytest.skip(message)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(TARGETS["amf0"].seeds()):
        (corpus / f"seed-{i}").write_bytes(seed)
    done = subprocess.run(
        [sys.executable, "-m", "fuzz.fuzz_amf0", "-runs=2000", f"-artifact_prefix={tmp_path}/", str(corpus)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    stats = campaign.parse_output("amf0", 0.0, done.returncode, done.stderr, [])
    assert stats.executions >= 2000
    assert stats.coverage > 0
    assert not list(tmp_path.glob("crash-*"))
