"""The knowledge index: passages and their MiniLM vectors in SQLite, searched by cosine.

One index per charter (`$CHARTER_HOME/knowledge/<charter id>.sqlite`). Files are keyed by
path and SHA-256: adding a folder again re-embeds only what changed and drops what was
deleted from it. Vectors are the packaged MiniLM's unit-length float32 embeddings (the same
model the guards use, loaded once per process). The index records which embedding model made
them; an index made by another one (an older Charter) is re-embedded from its stored
passages on first use, so nothing needs adding again. A search is one matrix product over the
stored vectors, fast for the thousands of passages a product team's docs make. (pgvector
replaces the scan when the store moves to PostgreSQL.)
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from charter.extras import requires_extra
from charter.home import charter_home
from charter.knowledge.documents import SUFFIXES, DocumentError, Passage, chunk, read_sections

with requires_extra("the knowledge index", "knowledge"):
    import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, passages INTEGER NOT NULL, added TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL REFERENCES files(path) ON DELETE CASCADE,
    heading TEXT NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_path ON passages(path);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Hit:
    """A passage found by a search, with its cosine similarity to the query."""

    passage: Passage
    score: float


@dataclass
class IngestReport:
    """What adding files did: resolved paths by outcome, (path, error) failures, passages made."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    passages: int = 0


def embedded_text(heading: str, text: str) -> str:
    """What is embedded for a passage: its heading and its text (on adding and re-embedding)."""
    return f"{heading}\n{text}"


def index_path(charter_id: str) -> Path:
    """Where a charter's index lives: `$CHARTER_HOME/knowledge/<charter id>.sqlite`."""
    return charter_home() / "knowledge" / f"{charter_id}.sqlite"


def files_under(paths: list[Path]) -> list[Path]:
    """The given files as they are, and every file with a readable suffix under the folders."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
        else:
            found.append(path)
    return found


class KnowledgeIndex:
    """A charter's passages and their vectors in the SQLite file at `path` (created if absent)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._matrix: np.ndarray | None = None
        self._rows: list[Passage] = []
        self._embedding_checked = False

    @property
    def embedding(self) -> str | None:
        """The embedding model of the stored vectors (None: an index from before it was kept)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'embedding'").fetchone()
        return str(row[0]) if row else None

    def _current_vectors(self) -> None:
        """Re-embed every stored passage when its vectors came from another model."""
        if self._embedding_checked:
            return
        from charter.guards.embedder import EMBEDDING_MODEL, shared_embedder

        if self.embedding != EMBEDDING_MODEL:
            rows = self._db.execute("SELECT id, heading, text FROM passages").fetchall()
            vectors = shared_embedder().embed([embedded_text(h, t) for _, h, t in rows])
            updates = [
                (v.astype(np.float32).tobytes(), r[0]) for r, v in zip(rows, vectors, strict=True)
            ]
            with self._db:
                self._db.executemany("UPDATE passages SET vector = ? WHERE id = ?", updates)
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('embedding', ?)", (EMBEDDING_MODEL,)
                )
            self._matrix = None
        self._embedding_checked = True

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> KnowledgeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, paths: list[Path], *, prune: bool = True) -> IngestReport:
        """Ingest files and folders, re-embedding only files whose content changed.

        With `prune`, files previously added from under these folders that no longer exist are
        removed.
        """
        from charter.guards.embedder import shared_embedder

        self._current_vectors()
        report = IngestReport()
        known = dict(self._db.execute("SELECT path, sha256 FROM files").fetchall())
        for file in files_under(paths):
            key = str(file.resolve())
            try:
                digest = hashlib.sha256(file.read_bytes()).hexdigest()
                if known.get(key) == digest:
                    report.unchanged.append(key)
                    continue
                passages = chunk(file.name, read_sections(file))
            except (DocumentError, OSError) as exc:
                report.failed.append((key, str(exc)))
                continue
            vectors = shared_embedder().embed([embedded_text(p.heading, p.text) for p in passages])
            with self._db:
                self._db.execute("DELETE FROM files WHERE path = ?", (key,))
                self._db.execute(
                    "INSERT INTO files VALUES (?, ?, ?, ?)",
                    (key, digest, len(passages), datetime.now(UTC).isoformat(timespec="seconds")),
                )
                self._db.executemany(
                    "INSERT INTO passages (path, heading, text, vector) VALUES (?, ?, ?, ?)",
                    [
                        (key, p.heading, p.text, v.astype(np.float32).tobytes())
                        for p, v in zip(passages, vectors, strict=True)
                    ],
                )
            (report.updated if key in known else report.added).append(key)
            report.passages += len(passages)
        if prune:
            folders = [str(p.resolve()) for p in paths if p.is_dir()]
            for key in known:
                if any(key.startswith(f + "/") for f in folders) and not Path(key).exists():
                    with self._db:
                        self._db.execute("DELETE FROM files WHERE path = ?", (key,))
                    report.removed.append(key)
        self._matrix = None
        return report

    def files(self) -> list[tuple[str, int, str]]:
        return self._db.execute("SELECT path, passages, added FROM files ORDER BY path").fetchall()

    def _load(self) -> tuple[np.ndarray, list[Passage]]:
        if self._matrix is None:
            rows = self._db.execute(
                "SELECT f.path, p.heading, p.text, p.vector FROM passages p "
                "JOIN files f ON f.path = p.path ORDER BY p.id"
            ).fetchall()
            self._rows = [
                Passage(Path(path).name, heading, text) for path, heading, text, _ in rows
            ]
            vectors = [np.frombuffer(blob, dtype=np.float32) for *_, blob in rows]
            self._matrix = np.stack(vectors) if vectors else np.zeros((0, 384), np.float32)
        return self._matrix, self._rows

    def search(self, query: str, k: int = 4, min_score: float = 0.0) -> list[Hit]:
        from charter.guards.embedder import shared_embedder

        self._current_vectors()
        matrix, rows = self._load()
        if not rows:
            return []
        vector = shared_embedder().embed([query])[0]
        scores = matrix @ vector
        order = np.argsort(-scores)[:k]
        return [Hit(rows[i], float(scores[i])) for i in order if scores[i] >= min_score]
