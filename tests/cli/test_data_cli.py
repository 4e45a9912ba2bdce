from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter.cli import app
from tests.datasets.fakes import CONTENT, ON_WEB, Tiny, build_tiny, leftovers, serving, sha256

runner = CliRunner()


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tiny]:
    """A tiny catalog (alpha: url, beta: pypi, gamma: mirror, secret: not redistributable)
    and an empty datasets folder that Charter reads."""
    web = tmp_path / "web"
    with serving(web) as base_url:
        built = build_tiny(tmp_path, base_url, web)
        monkeypatch.setenv("CHARTER_DATA_DIR", str(built.data))
        monkeypatch.setenv("CHARTER_DATASET_MANIFEST", str(built.manifest_file))
        yield built


def _states(tiny: Tiny) -> dict[str, str]:
    result = runner.invoke(app, ["data", "list", "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["data_dir"] == str(tiny.data)
    return {d["name"]: d["state"] for d in payload["datasets"]}


def test_list_shows_origin_licence_suites_and_state(tiny: Tiny) -> None:
    assert _states(tiny) == dict.fromkeys(["alpha", "beta", "gamma", "secret"], "missing")
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0
    assert f"datasets folder: {tiny.data}" in result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert rows["gamma"][1:3] == ["mirror", "MIT"] and "guard" in rows["gamma"]
    assert rows["secret"][1] == "url" and "no" in rows["secret"]


def test_pull_by_default_from_a_mirror_then_verify(tiny: Tiny) -> None:
    result = runner.invoke(app, ["data", "pull", "--from", str(tiny.mirror)])
    assert result.exit_code == 0, result.stderr
    assert "alpha: 2 file(s) fetched and verified" in result.stdout
    assert "beta: 1 file(s) fetched and verified" in result.stdout
    assert "gamma" not in result.stdout  # guard training only: not a default
    assert "note: secret left out" in result.stderr
    assert "`charter data pull secret`" in result.stderr
    assert _states(tiny) == {
        "alpha": "verified",
        "beta": "verified",
        "gamma": "missing",
        "secret": "missing",
    }
    again = runner.invoke(app, ["data", "pull", "alpha", "--from", str(tiny.mirror)])
    assert "alpha: 0 file(s) fetched and verified, 2 already verified" in again.stdout
    verified = runner.invoke(app, ["data", "verify"])
    assert verified.exit_code == 0, verified.stderr
    assert "alpha: ok (2 file(s))" in verified.stdout and "gamma" not in verified.stdout


def test_pull_from_the_upstreams(tiny: Tiny) -> None:
    wheels = ["--find-links", str(tiny.wheels)]
    result = runner.invoke(app, ["data", "pull", "s2", "secret", *wheels])
    assert result.exit_code == 0, result.stderr
    assert (tiny.data / "beta" / "c.json").read_bytes() == CONTENT["beta/c.json"]
    assert (tiny.data / "alpha" / "sub" / "b.jsonl").read_bytes() == CONTENT["alpha/sub/b.jsonl"]
    assert (tiny.data / "secret" / "s.txt").read_bytes() == CONTENT["secret/s.txt"]
    assert "note:" not in result.stderr


def test_pull_to_another_folder(tiny: Tiny, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    result = runner.invoke(
        app, ["data", "pull", "gamma", "--from", str(tiny.mirror), "--to", str(elsewhere)]
    )
    assert result.exit_code == 0, result.stderr
    assert (elsewhere / "gamma" / "g.json").is_file()
    assert f"set CHARTER_DATA_DIR={elsewhere}" in result.stderr


def test_verify_names_each_missing_or_different_file(tiny: Tiny) -> None:
    runner.invoke(app, ["data", "pull", "alpha", "gamma", "--from", str(tiny.mirror)])
    (tiny.data / "alpha" / "a.txt").write_bytes(b"first LINE\n")
    (tiny.data / "gamma" / "g.json").unlink()
    result = runner.invoke(app, ["data", "verify", "alpha", "gamma", "beta"])
    assert result.exit_code == 1
    assert (
        f"alpha/a.txt: SHA-256 mismatch: expected {sha256(CONTENT['alpha/a.txt'])}, "
        f"got {sha256(b'first LINE' + bytes([10]))}"
    ) in result.stderr
    assert "missing: gamma/g.json: missing" in result.stderr
    assert "missing: beta/c.json: missing" in result.stderr
    assert "to fix: charter data pull gamma --from DIR" in result.stderr
    assert "3 file(s) missing or different" in result.stderr
    by_suite = runner.invoke(app, ["data", "verify", "s1"])  # alpha, by its suite
    assert by_suite.exit_code == 1 and "alpha/a.txt" in by_suite.stderr


def test_verify_with_nothing_there(tiny: Tiny) -> None:
    result = runner.invoke(app, ["data", "verify"])
    assert result.exit_code == 1
    assert "no dataset is in" in result.stderr and "charter data pull" in result.stderr


def test_pull_errors(tiny: Tiny) -> None:
    unknown = runner.invoke(app, ["data", "pull", "nope"])
    assert unknown.exit_code == 2
    assert "unknown dataset or suite 'nope'" in unknown.stderr
    mirror_only = runner.invoke(app, ["data", "pull", "gamma"])
    assert mirror_only.exit_code == 1
    assert "gamma is mirror-only" in mirror_only.stderr
    assert "charter data pull gamma --from DIR" in mirror_only.stderr
    (tiny.web / ON_WEB["alpha/a.txt"]).write_bytes(b"tampered\n")
    tampered = runner.invoke(app, ["data", "pull", "alpha", "gamma", "--from", str(tiny.data)])
    assert tampered.exit_code == 1
    assert "alpha/a.txt: SHA-256 mismatch" in tampered.stderr
    assert sha256(b"tampered\n") in tampered.stderr
    assert not (tiny.data / "alpha" / "a.txt").exists() and leftovers(tiny.data) == []


def test_a_broken_manifest_is_an_error(tiny: Tiny, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"datasets": [{"name": "x"}]}')
    result = runner.invoke(app, ["data", "list", "--manifest", str(broken)])
    assert result.exit_code == 1
    assert f"cannot read dataset manifest {broken}" in result.stderr
