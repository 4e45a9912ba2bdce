"""Exporting what the pipeline caught: TRL's row shapes, redaction, filters, dedup, split."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from charter.eval.runner import charter_fingerprint
from charter.guards.base import GuardDependencyError
from charter.models.base import Message
from charter.store.sqlite import Store
from charter.training import (
    EvalRunError,
    Example,
    ExportError,
    ExportSettings,
    Filters,
    RedactionUnavailableError,
    Redactor,
    eval_examples,
    export,
    split_of,
    store_examples,
)
from tests.training.export_kit import (
    EMAIL,
    FEES_REPLY,
    LEAK,
    NAME,
    PHONE,
    PII_MESSAGE,
    PIN_DRAFT,
    PIN_QUESTION,
    PIN_REVISION,
    REFUSAL,
    RESOLUTION,
    eval_run,
    fill_store,
    read_jsonl,
    spec,
)


@pytest.fixture(scope="module")
def redact() -> Redactor:
    return Redactor(spec())  # loads presidio and spaCy once for the module


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[Store, dict[str, str]]]:
    ids = fill_store(tmp_path / "charter.db")
    store = Store(tmp_path / "charter.db")
    yield store, ids
    store.close()


def example(n: int = 0, **fields: object) -> Example:
    base: dict[str, object] = {
        "prompt": (Message(role="user", content=f"question {n}"),),
        "chosen": f"answer {n}",
        "rejected": None,
        "source": f"test/{n}",
        "kind": "turn",
        "conversation": f"c{n}",
        "charter_id": "shop",
        "fingerprint": "abc",
        "created_at": time.time(),
    }
    return Example(**{**base, **fields})  # type: ignore[arg-type]


def exported(examples: list[Example], out: Path, **settings: object) -> dict[str, list[dict]]:
    export(examples, ExportSettings(out=out, **settings), redact=None)  # type: ignore[arg-type]
    return {p.name: read_jsonl(p) for p in sorted(out.glob("*.jsonl"))}


# -- the row shapes TRL reads ------------------------------------------------------------------


def test_each_format_has_trls_columns(tmp_path: Path) -> None:
    pair = example(
        1,
        chosen="Use the app.",
        rejected="Tell me your PIN.",
        kind="critique",
        principles=("no-pin.forbidden",),
    )
    files = exported([pair], tmp_path)
    user = [{"role": "user", "content": "question 1"}]
    meta = {
        "source": "test/1",
        "kind": "critique",
        "principles": ["no-pin.forbidden"],
        "guard": None,
        "charter_id": "shop",
        "charter_fingerprint": "abc",
    }
    assert files["sft.jsonl"] == [
        {"messages": [*user, {"role": "assistant", "content": "Use the app."}], **meta}
    ]
    assert files["dpo.jsonl"] == [
        {
            "prompt": user,
            "chosen": [{"role": "assistant", "content": "Use the app."}],
            "rejected": [{"role": "assistant", "content": "Tell me your PIN."}],
            **meta,
        }
    ]
    assert files["kto.jsonl"] == [
        {
            "prompt": user,
            "completion": [{"role": "assistant", "content": "Use the app."}],
            "label": True,
            **meta,
        },
        {
            "prompt": user,
            "completion": [{"role": "assistant", "content": "Tell me your PIN."}],
            "label": False,
            **meta,
        },
    ]


def test_a_side_that_does_not_exist_is_never_made_up(tmp_path: Path) -> None:
    only_bad = example(2, chosen=None, rejected="I am DAN.")
    files = exported([only_bad, example(3)], tmp_path)
    assert files["dpo.jsonl"] == []
    assert [r["messages"][-1]["content"] for r in files["sft.jsonl"]] == ["answer 3"]
    assert [(r["completion"][0]["content"], r["label"]) for r in files["kto.jsonl"]] == [
        ("I am DAN.", False),
        ("answer 3", True),
    ]


def test_the_system_prompt_starts_every_prompt_only_when_asked(tmp_path: Path) -> None:
    pair = example(4, rejected="Tell me your PIN.")
    plain = exported([pair], tmp_path / "plain")
    assert all(m["role"] != "system" for r in plain["dpo.jsonl"] for m in r["prompt"])
    files = exported([pair], tmp_path / "with", system_prompt="You are Penny, at Acme Bank.")
    system = {"role": "system", "content": "You are Penny, at Acme Bank."}
    assert files["sft.jsonl"][0]["messages"][:2] == [
        system,
        {"role": "user", "content": "question 4"},
    ]
    assert files["dpo.jsonl"][0]["prompt"][0] == system
    assert [r["prompt"][0] for r in files["kto.jsonl"]] == [system, system]
    summary = json.loads((tmp_path / "with" / "export.json").read_text())
    assert summary["system_prompt"] is True


def test_only_the_formats_asked_are_written(tmp_path: Path) -> None:
    files = exported([example()], tmp_path, formats=("dpo",))
    assert list(files) == ["dpo.jsonl"]
    summary = json.loads((tmp_path / "export.json").read_text())
    assert summary["redacted"] is False


# -- from the store --------------------------------------------------------------------------


def test_a_revised_draft_is_rejected_against_the_revision(
    stored: tuple[Store, dict[str, str]],
) -> None:
    store, ids = stored
    examples = list(store_examples(store, fingerprints={"shop": charter_fingerprint(spec())}))
    revised = [e for e in examples if e.kind == "critique"]
    assert len(revised) == 1
    pair = revised[0]
    assert (pair.rejected, pair.chosen) == (PIN_DRAFT, PIN_REVISION)
    assert pair.principles == ("no-pin.forbidden",)
    assert pair.prompt == (Message(role="user", content=PIN_QUESTION),)
    assert pair.conversation == ids["revised"]
    assert pair.source.startswith("store:turn/")
    assert pair.fingerprint == charter_fingerprint(spec())
    # the next turn's prompt is the conversation as the model saw it: the revision, not the draft
    fees = next(e for e in examples if e.chosen == FEES_REPLY)
    assert [m.content for m in fees.prompt] == [
        PIN_QUESTION,
        PIN_REVISION,
        "Thanks. What are the fees?",
    ]


def test_a_resolution_is_chosen_over_the_hand_off(stored: tuple[Store, dict[str, str]]) -> None:
    store, ids = stored
    # a note often says what a person did, not what to reply: only when asked
    assert not [e for e in store_examples(store, fingerprints={}) if e.kind == "escalation"]
    examples = list(store_examples(store, fingerprints={}, resolutions=True))
    handed = [e for e in examples if e.kind == "escalation"]
    assert len(handed) == 1
    assert handed[0].chosen == RESOLUTION
    assert handed[0].rejected is not None and ids["escalation"] in handed[0].rejected
    assert handed[0].source == f"store:escalation/{ids['escalation']}"
    assert handed[0].prompt[-1].content == "agent"
    # the turn that handed off is no reply to learn from by itself
    assert not any(e.kind == "turn" and e.prompt[-1].content == "agent" for e in examples)


def test_a_default_resolution_note_is_not_a_reply(stored: tuple[Store, dict[str, str]]) -> None:
    store, _ids = stored
    store._execute("UPDATE escalations SET resolution = 'resolved'")
    examples = store_examples(store, fingerprints={}, resolutions=True)
    assert not [e for e in examples if e.kind == "escalation"]


def test_other_charters_conversations_are_left_out(stored: tuple[Store, dict[str, str]]) -> None:
    store, _ids = stored
    assert list(store_examples(store, fingerprints={}, charter_ids=["other"])) == []


# -- redaction -------------------------------------------------------------------------------


def test_planted_pii_never_reaches_the_files(
    stored: tuple[Store, dict[str, str]], redact: Redactor, tmp_path: Path
) -> None:
    store, _ids = stored
    examples = list(store_examples(store, fingerprints={}, resolutions=True))
    assert any(PII_MESSAGE in m.content for e in examples for m in e.prompt)  # it was said
    out = tmp_path / "out"
    export(examples, ExportSettings(out=out), redact=redact)
    written = "".join(p.read_text(encoding="utf-8") for p in out.glob("*.jsonl"))
    for planted in (EMAIL, PHONE, NAME, "Maria", "Gonzalez"):
        assert planted not in written
    assert "[EMAIL_ADDRESS]" in written and "[PHONE_NUMBER]" in written
    assert "[PERSON]" in written
    assert json.loads((out / "export.json").read_text())["redacted"] is True


def test_the_charters_own_name_and_contact_stay(redact: Redactor) -> None:
    text = "I'm Penny from Acme; call 0800 123 456. John Smith wrote to john@example.com."
    assert redact(text) == (
        "I'm Penny from Acme; call 0800 123 456. [PERSON] wrote to [EMAIL_ADDRESS]."
    )


def test_no_pii_guard_means_no_export(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*args: object, **kwargs: object) -> None:
        raise GuardDependencyError("the pii guard needs the pii extra")

    monkeypatch.setattr("charter.guards.pii.PIIGuard.__init__", missing)
    with pytest.raises(RedactionUnavailableError, match="--no-redact"):
        Redactor(spec())


def test_a_pair_redaction_makes_identical_is_no_pair(redact: Redactor, tmp_path: Path) -> None:
    pair = example(chosen=f"Write to {EMAIL}.", rejected="Write to bob@example.org.")
    files = {p.name: read_jsonl(p) for p in _export_redacted([pair], tmp_path, redact)}
    assert files["dpo.jsonl"] == []
    assert [r["label"] for r in files["kto.jsonl"]] == [True]


def _export_redacted(examples: list[Example], out: Path, redact: Redactor) -> list[Path]:
    export(examples, ExportSettings(out=out), redact=redact)
    return sorted(out.glob("*.jsonl"))


# -- filters, de-duplication, split ----------------------------------------------------------


def test_filters_by_principle_guard_date_and_charter(tmp_path: Path) -> None:
    day = datetime(2024, 5, 4, 12).timestamp()
    examples = [
        example(1, principles=("no-pin.forbidden",), created_at=day),
        example(2, principles=("no-pinned",), created_at=day),
        example(3, guard="leak", created_at=day - 86400),
        example(4, charter_id="other", created_at=day),
        example(5, created_at=day + 86400),
    ]

    def sources(filters: Filters) -> list[str]:
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        rows = exported(examples, out, filters=filters, formats=("sft",))["sft.jsonl"]
        return [r["source"] for r in rows]

    assert sources(Filters(principles=("no-pin",))) == ["test/1"]
    assert sources(Filters(guards=("leak",))) == ["test/3"]
    assert sources(Filters(charter_ids=("shop",))) == ["test/1", "test/2", "test/3", "test/5"]
    may_4 = date(2024, 5, 4)
    assert sources(Filters(since=may_4, until=may_4)) == ["test/1", "test/2", "test/4"]
    assert sources(Filters(since=date(2024, 5, 5))) == ["test/5"]
    assert sources(Filters(until=date(2024, 5, 3))) == ["test/3"]


def test_duplicates_are_dropped_after_normalising(tmp_path: Path) -> None:
    same = [
        example(1, prompt=(Message(role="user", content="Hello  there"),), chosen="Hi!"),
        example(2, prompt=(Message(role="user", content="hello there "),), chosen=" hi!"),
        example(3, prompt=(Message(role="user", content="hello there"),), chosen="Hi, how?"),
    ]
    summary = export(same, ExportSettings(out=tmp_path, formats=("sft",)), redact=None)
    rows = read_jsonl(tmp_path / "sft.jsonl")
    assert [r["source"] for r in rows] == ["test/1", "test/3"]
    assert summary.duplicates["sft"] == 1


def test_a_conversation_is_never_in_both_halves(tmp_path: Path) -> None:
    examples = [
        example(n, conversation=f"conversation-{n % 40}", chosen=f"answer {n}") for n in range(200)
    ]
    files = exported(examples, tmp_path, test_share=0.3)
    assert set(files) == {
        f"{fmt}.{half}.jsonl" for fmt in ("sft", "dpo", "kto") for half in ("train", "test")
    }
    conversation_of = {f"test/{n}": f"conversation-{n % 40}" for n in range(200)}
    train = {conversation_of[r["source"]] for r in files["sft.train.jsonl"]}
    test = {conversation_of[r["source"]] for r in files["sft.test.jsonl"]}
    assert train and test and not train & test
    assert len(train | test) == 40
    assert len(files["sft.train.jsonl"]) + len(files["sft.test.jsonl"]) == 200
    # the same conversation goes to the same half on every export
    again = exported(examples, tmp_path / "again", test_share=0.3)
    assert again == files
    assert all(split_of(c, 0.3) == "test" for c in test)


def test_the_test_share_must_leave_a_train_half(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="test share"):
        ExportSettings(out=tmp_path, test_share=1.0)


# -- eval runs -------------------------------------------------------------------------------


def test_an_eval_run_pairs_a_failing_side_with_a_passing_one(tmp_path: Path) -> None:
    run = eval_run(tmp_path / "run-1")
    examples = list(eval_examples(run, charter_id="shop"))
    by_case = {e.source: e for e in examples}
    assert set(by_case) == {
        "eval:run-1/extraction/x-1",
        "eval:run-1/over_refusal/o-1",
        "eval:run-1/jailbreak/j-1",
        "eval:run-1/jailbreak/j-1#2",
    }
    leak = by_case["eval:run-1/extraction/x-1"]
    assert (leak.chosen, leak.rejected) == (REFUSAL, LEAK)
    assert by_case["eval:run-1/over_refusal/o-1"].rejected is None
    both_failed = [by_case["eval:run-1/jailbreak/j-1"], by_case["eval:run-1/jailbreak/j-1#2"]]
    assert [(e.chosen, e.rejected) for e in both_failed] == [
        (None, "DAN here."),
        (None, "I am DAN."),
    ]
    assert {e.fingerprint for e in examples} == {"f00dfeedf00dfeed"}
    assert {datetime.fromtimestamp(e.created_at or 0).date() for e in examples} == {
        date(2024, 5, 4)
    }


def test_a_team_case_keeps_its_conversation(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    conversation = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Fees?"},
    ]
    record = {
        "suite": "mine",
        "id": "c1",
        "message": "Fees?",
        "where": "cases.yaml:3",
        "conversation": conversation,
        "off": {"reply": "Ask a banker.", "failed": True, "why": ""},
        "on": {"reply": FEES_REPLY, "blocked": False, "failed": False, "why": ""},
    }
    (run / "cases.jsonl").write_text(json.dumps(record) + "\n")
    (only,) = eval_examples(run, charter_id="shop")
    assert [m.to_wire() for m in only.prompt] == conversation
    assert only.fingerprint is None  # no report.json


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", r"cases.jsonl:2: not a cases.jsonl record: not JSON"),
        (
            '{"suite": "x", "id": "1", "message": "m", "off": {"reply": "a", "failed": true}}',
            r"cases.jsonl:2: not a cases.jsonl record: on: Field required",
        ),
    ],
)
def test_a_malformed_case_names_its_file_and_line(tmp_path: Path, line: str, expected: str) -> None:
    run = eval_run(tmp_path / "run")
    first = (run / "cases.jsonl").read_text().splitlines()[0]
    (run / "cases.jsonl").write_text(f"{first}\n{line}\n")
    with pytest.raises(EvalRunError, match=expected):
        list(eval_examples(run, charter_id="shop"))


def test_a_folder_without_cases_is_named(tmp_path: Path) -> None:
    with pytest.raises(EvalRunError, match=r"no cases\.jsonl"):
        list(eval_examples(tmp_path, charter_id="shop"))
