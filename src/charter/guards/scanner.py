"""Scan texts or conversations with a charter's guards, outside a chat: `charter scan`.

The guards are built once, so a file of thousands of lines pays for one model load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from charter.guards.base import Guard, Subject
from charter.guards.normalize import views
from charter.guards.registry import build_input_guards, build_output_guards
from charter.models.base import Message
from charter.persona.compile import compile_system_prompt
from charter.spec.models import CharterSpec
from charter.stages.guarding import GuardRun, run_guards


@dataclass(frozen=True)
class ScanResult:
    """The guards' overall verdict on one scanned text, with every guard's verdict and ms taken.

    `decoded` lists the decoded variants of an input text that the guards also read.
    """

    verdict: str  # "allow", "block", "rewrite" or "escalate"
    score: float
    reason: str
    run: GuardRun
    ms: float
    decoded: list[str]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "score": round(self.score, 4),
            "reason": self.reason,
            "guards": [
                {
                    "guard": v.guard,
                    "verdict": v.action,
                    "score": round(v.score, 4),
                    "ms": round(v.ms, 3),
                    "reason": v.reason,
                }
                for v in self.run.verdicts
            ],
            "ms": round(self.ms, 3),
        }
        if self.decoded:
            out["decoded"] = self.decoded
        if self.verdict == "rewrite":
            out["rewrite"] = self.run.text
        return out


class Scanner:
    """A charter's input or output guards, built once, to scan texts or conversations.

    The last message is the text under check; a plain string is scanned as one user message.
    """

    def __init__(self, charter: CharterSpec, *, direction: str = "input") -> None:
        self.charter = charter
        self.direction = direction
        self.guards: list[Guard] = (
            build_input_guards(charter) if direction == "input" else build_output_guards(charter)
        )
        compiled = compile_system_prompt(charter)
        self.system_prompt = compiled.text
        self.canary = compiled.canary

    async def ascan(self, messages: Sequence[Message]) -> ScanResult:
        started = time.perf_counter()
        text = messages[-1].content
        readings, decoded = views(text) if self.direction == "input" else ([text], [])
        subject = Subject(
            direction="input" if self.direction == "input" else "output",
            text=text,
            views=tuple(readings) if self.direction == "input" else (),
            messages=tuple(messages),
            system_prompt=self.system_prompt,
            canary=self.canary,
        )
        run = await run_guards(
            self.guards,
            subject,
            timeout_s=self.charter.guards.timeout_ms / 1000,
            failure=self.charter.on_failure,
            rewrite=self.direction == "output",
        )
        real = [v for v in run.verdicts if v.guard != "(not run)"]
        if run.blocked_by is not None:
            verdict, score, reason = (
                run.blocked_by.action,
                run.blocked_by.score,
                run.blocked_by.reason,
            )
        elif run.text != text:
            verdict = "rewrite"
            score = max(v.score for v in real if v.action == "rewrite")
            reason = "; ".join(v.reason for v in real if v.action == "rewrite")
        else:
            verdict, score, reason = "allow", max((v.score for v in real), default=0.0), ""
        ms = (time.perf_counter() - started) * 1000
        return ScanResult(verdict, score, reason, run, ms, decoded)

    def scan(self, messages: Sequence[Message] | str) -> ScanResult:
        if isinstance(messages, str):
            messages = [Message(role="user", content=messages)]
        return asyncio.run(self.ascan(messages))
