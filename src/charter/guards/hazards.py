"""Charter's hazard categories, and the mapping of other models' codes to them.

The categories are the MLCommons AI Safety taxonomy that Llama Guard 3 uses (S1-S14), with
cyber attacks and misinformation split out because product teams switch them on and off on
their own (a security product discusses exploits; a newsroom discusses disinformation). The
`harm` and `safety_model` guards report these names (`charter.spec.models.Hazard`); this module
maps other models' codes to them.
"""

from __future__ import annotations

from charter.spec.models import Hazard

LLAMA_GUARD_CODES: dict[str, Hazard] = {
    "S1": "violent_crime",
    "S2": "nonviolent_crime",
    "S3": "sex_crime",
    "S4": "child_abuse",
    "S5": "defamation",
    "S6": "specialized_advice",
    "S7": "privacy",
    "S8": "ip",
    "S9": "weapons",
    "S10": "hate",
    "S11": "self_harm",
    "S12": "sexual_content",
    "S13": "elections",
    "S14": "cyber",
}
"""Llama Guard 3's codes (S14 is 'code interpreter abuse'; Charter reads it as cyber)."""
