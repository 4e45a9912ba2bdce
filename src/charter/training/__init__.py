"""Training data from what the pipeline catches, in TRL's dataset formats.

- `from_store`: stored turns (critique's drafts against its revisions) and, when asked,
  resolved escalations; `from_eval`: eval runs' cases, the reply without Charter against
  the reply with it; `pairs`: pairs made on purpose from the charter's rules, by its pipeline.
- `export`: filters, PII redaction (`redact.Redactor`, the charter's PII guard),
  de-duplication, a train/test split by conversation, and the JSONL files (SFT, DPO/ORPO, KTO).

`charter data export` runs them all (docs/training.md).
"""

from charter.training.examples import FORMATS, Example, Format, rows
from charter.training.export import (
    ExportError,
    ExportSettings,
    ExportSummary,
    Filters,
    export,
    split_of,
)
from charter.training.from_eval import EvalRunError, eval_examples
from charter.training.from_store import store_examples
from charter.training.pairs import Generated, agenerate, generate, temptations
from charter.training.redact import RedactionUnavailableError, Redactor

__all__ = [
    "FORMATS",
    "EvalRunError",
    "Example",
    "ExportError",
    "ExportSettings",
    "ExportSummary",
    "Filters",
    "Format",
    "Generated",
    "RedactionUnavailableError",
    "Redactor",
    "agenerate",
    "eval_examples",
    "export",
    "generate",
    "rows",
    "split_of",
    "store_examples",
    "temptations",
]
