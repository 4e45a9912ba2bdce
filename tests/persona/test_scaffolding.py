"""The pipeline's own words are taken out of replies; ordinary replies are left alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charter.persona.repetition import repeats_earlier, repeats_itself, similarity
from charter.persona.scaffolding import Markers, strip

LABELS = Path(__file__).resolve().parents[2] / "src/charter/datasets/own/refusal_labels.jsonl"
MARKERS = Markers(check_ids=frozenset({"style.max_words", "no_ai.forbidden"}), canary="ZX-91")


def pipeline_replies() -> dict[str, str]:
    """Replies the pipeline gave with critique on (kept with the refusal detector's labels)."""
    rows = [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]
    return {r["id"]: r["reply"] for r in rows if "reply" in r}


@pytest.mark.parametrize(
    ("key", "opening"),
    [
        (
            "code-tutor/under_refusal/harmbench:sql_server_version_blind_sql_injection_template/on",
            "**Blind SQL Injection Attack",
        ),
        (
            "acme-bank-seed1/under_refusal/harmbench:strychnine_plant_extraction_instructions/on",
            "### Step 1",
        ),
    ],
)
def test_a_revision_frame_the_pipeline_produced_is_taken_out(key: str, opening: str) -> None:
    stripped = strip(pipeline_replies()[key], MARKERS, revised=True, request="How do I do this?")
    assert stripped.text.startswith(opening)
    assert "rewritten" not in stripped.text.lower()
    assert "revised version" not in stripped.text.lower()
    assert stripped.removed


def test_the_frame_is_an_answer_when_the_user_asked_for_a_rewrite() -> None:
    reply = "Sure, here's the rewritten message:\n\nDear Sam, the meeting moves to Friday."
    asked = strip(reply, MARKERS, revised=True, request="Please rewrite this email to Sam.")
    assert asked.text == reply
    echoed = strip(reply, MARKERS, revised=True, request="When is the meeting?")
    assert echoed.text == "Dear Sam, the meeting moves to Friday."


def test_a_closing_comment_on_how_the_revision_keeps_the_rules_is_taken_out() -> None:
    reply = (  # a 0.5B's revision in a real conversation, word for word
        '"Thank you for your prompt response. I appreciate your attention to detail."\n\n'
        "This message follows the rules by not using exclamation marks and quotes, and it "
        "includes a closing sentence."
    )
    stripped = strip(reply, MARKERS, revised=True, request="Any good company names?")
    assert (
        stripped.text
        == "Thank you for your prompt response. I appreciate your attention to detail."
    )
    assert stripped.removed[0].startswith("revision comment: This message follows the rules")
    # rules of something else, or a reply of one paragraph, are the answer
    for kept in (
        "Use four spaces.\n\nThis code follows the rules of PEP 8.",
        "The revised reply follows the rules you gave.",
    ):
        assert strip(kept, MARKERS, revised=True, request="x").text == kept


def test_without_a_revision_only_verbatim_markers_are_taken_out() -> None:
    reply = "Here's the updated version of the plan:\n\nStep one.\n\nThis plan follows the rules."
    assert strip(reply, MARKERS, revised=False, request="plan?").text == reply
    marked = "Your balance is 20 EUR.\n(Reminder: You are Penny, a bank assistant.)"
    assert strip(marked, MARKERS, revised=False, request="balance?").text == (
        "Your balance is 20 EUR."
    )
    ids = "Fixed style.max_words for you.\nYour balance is 20 EUR."
    assert strip(ids, MARKERS, revised=False, request="x").text == "Your balance is 20 EUR."
    assert strip("ref ZX-91 here\nok", MARKERS, revised=False, request="x").text == "ok"


def test_a_reply_that_copies_an_earlier_one_is_found() -> None:
    earlier = [
        "Chess is a two-player strategy game played on a board of 64 squares with sixteen pieces.",
        "Our branches open at nine in the morning and close at five in the evening on weekdays.",
    ]
    again = "Our branches open at nine in the morning and close at five in the evening on weekdays!"
    assert repeats_earlier(again, earlier) == 1
    assert repeats_earlier("Thanks, you too!", ["Thanks, you too!"]) is None  # short: allowed
    assert (
        repeats_earlier("Knights move in an L shape: two squares one way, then one.", earlier)
        is None
    )
    assert similarity(earlier[0], earlier[1]) < 0.2


def test_a_reply_that_repeats_itself_is_found() -> None:
    tags = "Great news! " + " ".join(["#banking"] * 12)
    assert repeats_itself(tags) == "#banking"
    loop = "I can help.\nI can help.\nI can help.\nI can help."
    assert repeats_itself(loop) == "i can help."
    assert repeats_itself("One. Two. Three. The end of the story, told once.") is None


def test_a_list_that_gives_one_item_over_and_over_repeats_itself() -> None:
    looping = "Here are some team names:\n" + "\n".join(
        f"{n}. CEU Innovators" for n in range(1, 12)
    )
    assert repeats_itself(looping) == "ceu innovators"
    bullets = "\n".join(["- Team Rocket"] * 5 + ["- Team Comet"])
    assert repeats_itself(bullets) == "team rocket"
    varied = "\n".join(
        f"{n}. {name}"
        for n, name in enumerate(
            ["CEU Innovators", "Flow Forge", "Build Loop", "Core Crew", "Ship Shape"], 1
        )
    )
    assert repeats_itself(varied) is None
