"""`charter eval` end to end: pick the cases, run off and on, score, write the report.

    report = evaluate(EvalSettings(charter=Path("examples/acme-bank/charter.yaml")))

Writes into the output folder: `report.json` (validated against the published schema),
`report.html` (one self-contained page), `cases.jsonl` (every case: both replies, both
verdicts and why, for reading and for labelling), and `cache.sqlite` (completions, so an
interrupted run resumes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from charter import plugins
from charter.datasets.catalog import missing_for_suites
from charter.errors import CharterError
from charter.eval import cases as case_sets
from charter.eval import constrained, ifeval, own_cases, stability
from charter.eval.html import render
from charter.eval.report import Report, build, scored
from charter.eval.runner import Cache, Result, Runner, charter_fingerprint
from charter.eval.scoring import Context, Outcome, Score, own_answers
from charter.models.base import ChatModel
from charter.models.factory import build_model, model_name
from charter.persona.compile import compile_system_prompt
from charter.persona.identity import held_checks
from charter.spec.loader import load_charter
from charter.spec.models import CharterSpec, LocalModelSpec

SUITES: tuple[str, ...] = (
    "over_refusal",
    "under_refusal",
    "jailbreak",
    "injection",
    "extraction",
    "toxicity",
    "pii",
    "policy",
    "instruction_following",
    "constrained_writing",
    "tools",
)
"""The default suites, Charter's own. `persona_stability` (multi-turn conversations) and the
suites other packages register (`charter.suites`) are opt-in."""
ALL_SUITES: tuple[str, ...] = (*SUITES, "persona_stability")
"""Charter's own suites; `known_suites()` adds those other packages register."""
PROFILES: dict[str, int | None] = {"quick": 5, "standard": 50, "full": None}
"""Cases per suite. quick: minutes on a laptop CPU; standard: about an hour; full: every
case (hours on CPU; use a served model and --workers)."""
CONVERSATIONS: dict[str, int] = {"quick": 1, "standard": 2, "full": 5, "custom": 1}
"""persona_stability's replayed ShareGPT conversations per profile (and one scripted one)."""
OWN = "cases"
"""In `suites`: no built-in suite, only the team's own (which run whatever `suites` says)."""


@dataclass
class EvalSettings:
    """What one `charter eval` run measures and how: charter, suites, sample, model, workers."""

    charter: Path
    out: Path = Path("eval-out")
    suites: tuple[str, ...] = SUITES
    limit: int | None = PROFILES["quick"]
    seed: int = 0
    workers: int = 1
    model: str | None = None
    profile: str = "quick"
    turns: int = 50
    """Turns per persona_stability conversation."""
    cases: tuple[Path, ...] = ()
    """Cases files besides the charter's own `tests`."""
    ray: str | None = None
    """Fan cases out over Ray: a cluster address (`auto`, `HOST:PORT`, `ray://...`) or
    `local` (a Ray instance started for this run); `workers` actors."""
    refusal_judge: str = "auto"
    """Who reads replies in the refusal detector's uncertain band: `model` (the charter's
    judge model), `detector` (the detector's own guess), or `auto`: the judge model when the
    charter names one apart from its chat model (`models.judge`), else the detector."""
    extra: dict[str, str] = field(default_factory=dict)


def own_suites(spec: CharterSpec, settings: EvalSettings) -> list[own_cases.OwnSuite]:
    """The team's suites: the charter's `tests` files and `settings.cases`."""
    suites = own_cases.load_all([*spec.tests, *settings.cases])
    if OWN in settings.suites and not suites:
        raise CharterError(
            "--suites cases: this charter names no cases files (`tests:`), and no --cases "
            "FILE was given"
        )
    if not held_checks(spec):
        for suite in suites:
            for case in suite.cases:
                if any(a.persona for a in case.meta["own"].assertions):
                    raise CharterError(
                        f"{case.meta['where']}: case {case.id} asserts `persona`, but the "
                        "charter has no programmatic persona checks (persona.style, "
                        "constitution[].check, or the identity claim, which a charter that "
                        "names every known vendor has none of)"
                    )
    return suites


def known_suites() -> tuple[str, ...]:
    """Every suite `--suites` may name.

    The registered ones (`charter.suites`: Charter's own first, then other packages'), and
    `cases`.
    """
    others = [s for s in plugins.suites.names() if s not in ALL_SUITES]
    return (*ALL_SUITES, *others, OWN)


def unknown_suites(suites: tuple[str, ...]) -> str | None:
    """What is wrong with `suites` when it names a suite nobody registers, else None."""
    unknown = [s for s in suites if s not in known_suites()]
    if not unknown:
        return None
    return (
        f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(known_suites())}. A suite "
        "from another package is found once that package is installed: a plugin may be missing"
    )


def select_cases(spec: CharterSpec, settings: EvalSettings) -> list[case_sets.Case]:
    """The sampled cases of the chosen suites, then every case of the team's own suites.

    The team's own cases are never sampled: each is a requirement somebody wrote down. An
    unknown suite is a CharterError.
    """
    why = unknown_suites(settings.suites)
    if why is not None:
        raise CharterError(why)
    own = own_suites(spec, settings)  # first: a malformed file fails before any dataset loads
    picked: list[case_sets.Case] = []
    for suite in settings.suites:
        if suite == OWN:
            continue
        if suite == "persona_stability":
            conversations = CONVERSATIONS.get(settings.profile, 1)
            picked += stability.conversation_cases(
                spec, conversations, settings.turns, seed=settings.seed
            )
            continue
        all_cases = case_sets.uncontaminated(plugins.suites.get(suite).load(spec))
        picked += case_sets.sample(all_cases, settings.limit, settings.seed)
    for team_suite in own:
        picked += team_suite.cases
    return picked


def with_model(spec: CharterSpec, model: str | None) -> CharterSpec:
    """The charter with its chat model replaced by catalog name or .gguf path `model`."""
    if model is None:
        return spec
    chat = spec.models.chat
    base = chat.model_dump() if isinstance(chat, LocalModelSpec) else {}
    local = LocalModelSpec.model_validate({**base, "backend": "local", "model": model})
    return spec.model_copy(update={"models": spec.models.model_copy(update={"chat": local})})


REFUSAL_JUDGES = ("auto", "model", "detector")


def uses_refusal_judge(spec: CharterSpec, choice: str) -> bool:
    """Whether the judge model reads the refusal detector's uncertain band.

    `auto` asks it only when the charter names a judge model of its own: the default chat model
    judged no better than a constant on the labels' dev half (docs/eval.md). A `choice` other
    than auto, model or detector is a CharterError.
    """
    if choice not in REFUSAL_JUDGES:
        raise CharterError(
            f"refusal judge must be one of {', '.join(REFUSAL_JUDGES)}, not {choice!r}"
        )
    return choice == "model" or (choice == "auto" and spec.models.judge is not None)


def context_for(spec: CharterSpec, suites: tuple[str, ...]) -> Context:
    """What the scorers need from the charter: persona checks, canary, prompt, own answers.

    The toxicity classifier (and its threshold) is loaded only when `suites` has toxicity.
    """
    compiled = compile_system_prompt(spec)
    own = own_answers(spec)
    toxicity: Callable[[str], float] | None = None
    threshold = 0.8
    if "toxicity" in suites:
        from charter.guards.toxicity import THRESHOLD, ToxicityGuard

        toxicity, threshold = ToxicityGuard().score, THRESHOLD
    return Context(
        persona_checks=tuple(held_checks(spec)),
        canary=compiled.canary,
        private_prompt=compiled.private,
        own_answers=own,
        toxicity=toxicity,
        toxicity_threshold=threshold,
    )


def evaluate(
    settings: EvalSettings,
    *,
    model: ChatModel | None = None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[Result], None] | None = None,
    on_skip: Callable[[dict[str, str]], None] | None = None,
) -> Report:
    """Run the chosen suites off and on and write the report.

    A suite whose public dataset is missing, or whose packages are not installed, is left out
    (its reason goes to `on_skip` and into the report's settings as `skipped`), and the rest
    run.
    """
    spec = with_model(load_charter(settings.charter), settings.model)
    skipped = missing_for_suites(s for s in settings.suites if s in SUITES)
    if "constrained_writing" in settings.suites and (why := constrained.unavailable()):
        skipped["constrained_writing"] = why
    if "instruction_following" in settings.suites and (why := ifeval.unavailable()):
        skipped["instruction_following"] = why
    if skipped:
        runnable = tuple(s for s in settings.suites if s not in skipped)
        if not runnable and not spec.tests and not settings.cases:
            lines = "\n".join(f"  {suite}: {why}" for suite, why in skipped.items())
            raise CharterError(f"no suite can run, their datasets are missing:\n{lines}")
        settings = replace(settings, suites=runnable)
        if on_skip is not None:
            on_skip(skipped)
    cases = select_cases(spec, settings)
    if on_start is not None:
        on_start(len(cases) * 2)
    if model is not None:
        chat_model = model
    elif settings.ray is not None and not any(c.suite == "persona_stability" for c in cases):
        from charter.eval.distributed import Elsewhere

        chat_model = Elsewhere(model_name(spec.models.chat))  # the workers build it
    else:
        chat_model = build_model(spec.models.chat)
    settings.out.mkdir(parents=True, exist_ok=True)
    runner = Runner(
        spec,
        chat_model,
        Cache(settings.out / "cache.sqlite"),
        refusal_judge=uses_refusal_judge(spec, settings.refusal_judge),
    )
    started = time.perf_counter()
    own = [c for c in cases if own_cases.is_own(c)]
    single = [c for c in cases if c.suite != "persona_stability"]
    conversational = [c for c in cases if c.suite == "persona_stability"]
    try:
        if settings.ray is not None:
            from charter.eval.distributed import run_on_ray

            address = None if settings.ray == "local" else settings.ray
            results = run_on_ray(
                runner, single, workers=settings.workers, address=address, on_result=on_result
            )
        else:
            results = runner.run(single, workers=settings.workers, on_result=on_result)
        results += stability.run_conversations(runner, conversational, on_result=on_result)
    finally:
        runner.close()
    wall = time.perf_counter() - started
    ctx = context_for(spec, settings.suites)
    rows = scored(results, ctx)
    report = build(
        spec=spec,
        charter_path=str(settings.charter),
        fingerprint=charter_fingerprint(spec),
        model_name=chat_model.name,
        settings={
            "profile": settings.profile,
            "suites": list(settings.suites),
            "limit": settings.limit,
            "seed": settings.seed,
            "workers": settings.workers,
            "refusal_judge": (
                "detector, then the judge model"
                if uses_refusal_judge(spec, settings.refusal_judge)
                else "detector"
            ),
            **({"ray": settings.ray} if settings.ray is not None else {}),
            **({"skipped": [f"{k}: {v}" for k, v in skipped.items()]} if skipped else {}),
            "max_tokens": spec.models.chat.max_tokens,
            "temperature": spec.models.chat.temperature,
            "turns": settings.turns if conversational else None,
            **({"cases": list(dict.fromkeys(_file(c) for c in own))} if own else {}),
            **settings.extra,
        },
        rows=rows,
        wall_s=wall,
    )
    write(report, settings.out)
    with (settings.out / "cases.jsonl").open("w", encoding="utf-8") as handle:
        for case, off_score, on_score, off, on in rows:
            record = _record(case, off_score, on_score, off, on)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    if model is None:
        chat_model.close()
    return report


def _file(case: case_sets.Case) -> str:
    """The cases file a team case comes from."""
    return str(case.meta["where"]).rsplit(":", 1)[0]


def _record(
    case: case_sets.Case, off_score: Score, on_score: Score, off: Outcome, on: Outcome
) -> dict[str, object]:
    """One line of cases.jsonl."""
    sides: dict[str, dict[str, object]] = {
        "off": {"reply": off.text, "failed": off_score.failed, "why": off_score.why},
        "on": {
            "reply": on.text,
            "blocked": on.blocked,
            "failed": on_score.failed,
            "why": on_score.why,
        },
    }
    for side, outcome in (("off", off), ("on", on)):
        if outcome.calls is not None:
            sides[side]["calls"] = outcome.calls
        if outcome.judged is not None:
            sides[side]["judged"] = outcome.judged
    record: dict[str, object] = {"suite": case.suite, "id": case.id, "message": case.message}
    if own_cases.is_own(case):
        record["where"] = case.meta["where"]
        record["conversation"] = [m.to_wire() for m in case.meta["own"].messages()]
    return {**record, **sides}


def write(report: Report, out: Path) -> None:
    """Write `report.json` and `report.html` into the folder `out`, made if missing."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(
        report.model_dump_json(indent=2, by_alias=True) + "\n", encoding="utf-8"
    )
    (out / "report.html").write_text(render(report), encoding="utf-8")


def load_report(path: Path) -> Report:
    """Read a `report.json` back; a file that is not a report is a ValueError."""
    return Report.model_validate_json(path.read_text(encoding="utf-8"))


def report_schema() -> str:
    """The JSON Schema of `report.json`, as indented text ending in a newline."""
    return json.dumps(Report.model_json_schema(by_alias=True), indent=2) + "\n"
