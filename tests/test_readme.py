"""What README says, checked where a test can: the default store and where artifacts go, the
CLI reference against the parser, and every path it names exists. Docs that contradict what
happens are a bug like any other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PROSE = " ".join(README.split())  # line breaks folded


def test_the_default_store_is_mlflow_db_in_the_working_directory(tmp_path, monkeypatch):
    from sweeper.tracking.uri import resolve_tracking_uri

    assert "else `sqlite:///mlflow.db` in the working directory" in PROSE
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path}/mlflow.db"


def test_artifacts_of_a_sqlite_store_go_beside_it(tmp_path):
    from sweeper.tracking.uri import artifact_location

    assert "in `mlartifacts/<experiment>/` next to the database file" in PROSE
    assert artifact_location(f"sqlite:///{tmp_path}/m.db", "exp") == str(tmp_path / "mlartifacts" / "exp")


def test_the_cli_reference_names_every_flag_of_every_verb():
    from sweeper.cli import build_parser

    block = README.split("## CLI reference", 1)[1].split("```", 2)[1]
    verbs = build_parser()._subparsers._group_actions[0].choices  # argparse has no public walk
    for verb, parser in verbs.items():
        assert f"sweeper {verb}" in block, verb
        for action in parser._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in block, f"sweeper {verb} {flag} is missing from README's CLI reference"


@pytest.mark.parametrize("path", sorted(set(re.findall(
    r"`((?:sweeper|tests|benchmarks|configs|experiments)/[\w./-]+\.(?:py|yaml|md))`", README))))
def test_every_file_readme_names_exists(path):
    assert (ROOT / path).exists(), path


def test_readme_stands_alone():
    assert "shared/" not in README.replace("/dev/shm", "")
