"""Charter's hazard categories: the MLCommons AI Safety taxonomy that Llama Guard 3 uses
(S1-S14), with cyber attacks and misinformation split out because product teams switch them
on and off on their own (a security product discusses exploits; a newsroom discusses
disinformation). The `harm` guard and the `safety_model` guard both report these names.
"""

from __future__ import annotations

from typing import get_args

from charter.spec.models import Hazard

HAZARDS: tuple[Hazard, ...] = get_args(Hazard)

DESCRIPTIONS: dict[Hazard, str] = {
    "violent_crime": "violent crimes: terrorism, murder, assault, kidnapping, animal abuse",
    "nonviolent_crime": "non-violent crimes: fraud, theft, drugs, trafficking, weapons dealing",
    "cyber": "cyber attacks: malware, ransomware, intrusion, exploits against others' systems",
    "sex_crime": "sex-related crimes: sexual assault, harassment, trafficking",
    "child_abuse": "child sexual exploitation",
    "defamation": "defamation: false statements that injure a real person's reputation",
    "specialized_advice": "specialised financial, medical or legal advice given as fact",
    "privacy": "privacy: sensitive personal information about private people, doxxing",
    "ip": "intellectual property: reproducing copyrighted works, piracy",
    "weapons": "indiscriminate weapons: chemical, biological, radiological, nuclear, explosives",
    "hate": "hate: demeaning people for protected characteristics",
    "self_harm": "suicide and self-harm: methods, encouragement, eating disorders",
    "sexual_content": "sexual content: explicit sexual material",
    "elections": "elections: false information about voting and electoral processes",
    "misinformation": "misinformation and disinformation campaigns, propaganda",
    "other": "other serious harm",
}

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
