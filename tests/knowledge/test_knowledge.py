"""Knowledge: documents into passages, the SQLite index, retrieval with citations."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter import Charter, FakeModel
from charter.cli import app
from charter.knowledge.documents import DocumentError, chunk, read_sections
from charter.knowledge.index import KnowledgeIndex
from charter.spec import load_charter

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "examples" / "acme-bank" / "charter.yaml"


def test_markdown_sections_follow_headings_and_skip_code_fences(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("# Fees\nNo fee.\n\n## Cards\n```\n# not a heading\n```\nFree cards.\n")
    sections = read_sections(doc)
    assert [s.heading for s in sections] == ["Fees", "Cards"]
    assert "# not a heading" in sections[1].text


def test_html_keeps_text_under_its_heading(tmp_path: Path) -> None:
    doc = tmp_path / "a.html"
    doc.write_text(
        "<html><head><style>p{}</style></head><body><h2>Hours</h2><p>Open 9-17.</p>"
        "<script>alert(1)</script><ul><li>Closed Sundays</li></ul></body></html>"
    )
    (section,) = read_sections(doc)
    assert section.heading == "Hours"
    assert "Open 9-17." in section.text and "Closed Sundays" in section.text
    assert "alert" not in section.text


def test_unsupported_and_broken_files_get_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "a.docx").write_bytes(b"x")
    with pytest.raises(DocumentError, match=r"cannot read \.docx"):
        read_sections(tmp_path / "a.docx")
    (tmp_path / "b.pdf").write_bytes(b"not a pdf")
    with pytest.raises(DocumentError, match="unreadable PDF"):
        read_sections(tmp_path / "b.pdf")


def test_chunks_hold_whole_paragraphs_within_the_limit(tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("\n\n".join(f"Paragraph {i} has exactly six words." for i in range(10)))
    passages = chunk("a.txt", read_sections(doc), max_words=14)
    assert [len(p.text.split()) for p in passages] == [12] * 5
    assert passages[0].where == "a.txt"


def test_vectors_from_another_embedding_model_are_re_embedded(tmp_path: Path) -> None:
    """An index written by an older Charter (another MiniLM runtime, no recorded model) is
    re-embedded from its stored passages on first use: search works without adding again."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hours.md").write_text("# Hours\nBranches open at nine and close at five.")
    (docs / "cards.md").write_text("# Cards\nA lost card can be frozen in the app.")
    path = tmp_path / "k.sqlite"
    with KnowledgeIndex(path) as index:
        index.add([docs])
        assert index.embedding == "all-MiniLM-L6-v2/onnx-int8"
        index._db.execute("UPDATE passages SET vector = zeroblob(1536)")  # stale vectors
        index._db.execute("DELETE FROM meta")
        index._db.commit()
    with KnowledgeIndex(path) as index:
        assert index.embedding is None
        (hit,) = index.search("my card is lost", k=1)
        assert hit.passage.heading == "Cards" and hit.score > 0.3
        assert index.embedding == "all-MiniLM-L6-v2/onnx-int8"


def test_the_index_re_embeds_only_what_changed_and_prunes(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hours.md").write_text("# Hours\nBranches open at nine and close at five.")
    (docs / "fees.md").write_text("# Fees\nAn international transfer costs 15 EUR.")
    with KnowledgeIndex(tmp_path / "k.sqlite") as index:
        first = index.add([docs])
        assert len(first.added) == 2 and first.passages == 2
        again = index.add([docs])
        assert len(again.unchanged) == 2 and again.passages == 0
        (docs / "fees.md").write_text("# Fees\nAn international transfer costs 20 EUR.")
        (docs / "hours.md").unlink()
        third = index.add([docs])
        assert len(third.updated) == 1 and len(third.removed) == 1
        (hit,) = index.search("What does sending money abroad cost?", k=1)
        assert "20 EUR" in hit.passage.text
        assert hit.passage.where == "fees.md › Fees"


def test_acme_answers_from_its_documents_and_cites_them() -> None:
    model = FakeModel(["The daily cash limit on Premium is 1,000 EUR [1]."], default="ok")
    charter = Charter(load_charter(ACME).model_copy(update={"tools": []}), model=model)
    reply = charter.respond("How much cash can I withdraw per day with Premium?")
    [request] = model.calls  # the passages reach the model that writes the reply
    system = request.messages[0].content
    assert "Knowledge for this reply" in system
    assert "1,000 EUR on Premium" in system
    assert [(c["n"], c["where"]) for c in reply.citations] == [
        (1, "cards-and-limits.md › Daily limits")
    ]
    assert "1,000 EUR on Premium" in reply.citations[0]["text"]
    charter.close()


def test_knowledge_cli_add_list_search(tmp_path: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(app, ["knowledge", "add", str(ACME)])
    assert added.exit_code == 0, added.output
    assert "added 3," in added.output
    listed = runner.invoke(app, ["knowledge", "list", str(ACME)])
    assert "fees.md" in listed.output
    found = runner.invoke(app, ["knowledge", "search", str(ACME), "freeze my card", "-k", "1"])
    assert "Freezing and replacing a card" in found.output
    missing = runner.invoke(app, ["knowledge", "add", str(ACME), str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert "not found" in missing.output


def test_figures_are_normalised_and_skip_citations_and_list_numbers() -> None:
    from charter.knowledge.grounding import figures, unsupported

    assert figures("1. Limit is 1,000 EUR [2], open 9:00, 0.5% margin") == {"1000", "9:00", "0.5"}
    assert unsupported("It costs 15 EUR.", ["International transfers cost 15 EUR each."]) == []
    assert unsupported("It costs 25 EUR.", ["International transfers cost 15 EUR each."]) == ["25"]
    assert unsupported("We open at 9 and close at 17:00.", ["Open 9:00-17:00."]) == []


def test_an_invented_figure_is_revised_then_replaced_by_dont_know() -> None:
    model = FakeModel(
        [
            "Your daily cash limit on Premium is 3,000 EUR.",
            "On Premium you can take out 1,000 EUR a day [1].",
            "Your daily cash limit on Premium is 3,000 EUR.",
            "Still 3,000 EUR.",
        ],
        default="ok",
    )
    charter = Charter(load_charter(ACME).model_copy(update={"tools": []}), model=model)
    fixed = charter.respond("How much cash can I withdraw per day with Premium?")
    assert fixed.text == "On Premium you can take out 1,000 EUR a day [1]."
    revision = model.calls[1].messages[-1].content  # the model is told what to fix
    assert "grounded.figures" in revision
    invented = charter.respond("And with Premium, how much cash per day?")
    assert "not sure" in invented.text and "3,000" not in invented.text
    assert invented.trace["critique"].detail["ungrounded"] == ["3000"]
    charter.close()


def test_named_entities_must_come_from_the_sources() -> None:
    from charter.knowledge.grounding import named_entities, unsupported_entities

    passages = ["Our branch at 12 Main Street opens Monday to Friday, 9:00-17:00."]
    assert unsupported_entities("Visit us on Main Street on Monday.", passages) == []
    assert unsupported_entities("Visit our branch on Oxford Street.", passages) == ["Oxford Street"]
    assert unsupported_entities("John Smith will call you back on Sunday.", passages) == [
        "John Smith",
        "Sunday",
    ]
    # Dates without a month or weekday are not claims of this kind; figures are checked apart.
    assert named_entities("It arrives the next day, and the fee is charged monthly.") == ()


def test_an_invented_name_is_revised_then_replaced_by_dont_know() -> None:
    model = FakeModel(
        [
            "Go to our branch on Oxford Street [1].",
            "Go to our branch on Main Street [1].",
            "Go to our branch on Oxford Street [1].",
            "Ask for Mr Jones at Oxford Street.",
        ],
        default="ok",
    )
    charter = Charter(load_charter(ACME).model_copy(update={"tools": []}), model=model)
    fixed = charter.respond("Where is your branch?")
    assert fixed.text == "Go to our branch on Main Street [1]."
    revision = model.calls[1].messages[-1].content  # the model is told what to fix
    assert "grounded.entities" in revision
    invented = charter.respond("And where exactly is the branch?")
    assert "not sure" in invented.text and "Oxford" not in invented.text
    assert "Oxford Street" in invented.trace["critique"].detail["ungrounded"]
    charter.close()
