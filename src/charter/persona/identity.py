"""Who the assistant says it is: identity questions, the persona's answer, and claims to hold.

A charter's assistant is its persona (name, role, organisation), whatever model runs it. Three
parts keep it so:

- `is_identity_question` reads the user's message: "who made you?", "are you ChatGPT?",
  "what model is this?". Patterns catch the plain wordings; a message that only looks close
  (short, addressed to the assistant, with a word about makers, models or names) is compared
  by MiniLM with prototypes written for this module, each either an identity question or a
  near miss ("who made the Eiffel Tower?", "what is your opening time?").
- `identity_hint` is what the persona stage tells the model for such a message: answer as the
  persona (`identity_sentence`), and do not name the model or the company behind it, unless
  the charter itself names them.
- `claims` finds the sentences of a reply that claim to be another assistant, model or
  company ("As an AI language model developed by OpenAI", "I'm Qwen, created by Alibaba
  Cloud"). `identity_check` is the persona check the critique stage runs on every draft; its
  repair puts the persona's identity sentence in place of the first claim and drops the others.
  A vendor the charter names (its organisation, name, description or facts) may be claimed.
- `model_talk` finds where a reply speaks as the underlying model without naming one ("I am
  a language model", "my knowledge cutoff is 2021"): the persona judge counts it against the
  identity rule; there is no repair in code (the sentence often carries the answer too).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from charter.persona.checks import PersonaCheck, persona_checks

if TYPE_CHECKING:
    from charter.spec.models import CharterSpec


@dataclass(frozen=True)
class Vendor:
    """A company that makes assistants or models, and the names of what it makes."""

    company: str
    aliases: tuple[str, ...]
    """Other ways the company is written."""
    products: tuple[str, ...]
    """Its assistants and model families, as written in replies."""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.company, *self.aliases, *self.products)


VENDORS: tuple[Vendor, ...] = (
    Vendor(
        "OpenAI",
        ("Open AI",),
        (
            "ChatGPT",
            "Chat GPT",
            "GPT-4o",
            "GPT-4",
            "GPT4",
            "GPT-3.5",
            "GPT-3",
            "GPT3",
            "GPT",
            "InstructGPT",
            "davinci",
        ),
    ),
    Vendor("Anthropic", (), ("Claude",)),
    Vendor(
        "Google",
        ("Google DeepMind", "DeepMind", "Google AI", "Google Research"),
        ("Gemini", "Bard", "PaLM", "LaMDA", "Gemma"),
    ),
    Vendor("Meta", ("Meta AI", "Facebook", "Facebook AI"), ("Llama", "LLaMA")),
    Vendor("Alibaba Cloud", ("Alibaba", "Alibaba Group"), ("Qwen", "Tongyi Qianwen", "Tongyi")),
    Vendor("Mistral AI", (), ("Mistral", "Mixtral", "Le Chat")),
    Vendor("Microsoft", (), ("Copilot", "Bing Chat")),
    Vendor("DeepSeek", (), ("DeepSeek",)),
    Vendor("xAI", (), ("Grok",)),
    Vendor("Cohere", (), ("Command R",)),
    Vendor("Baidu", (), ("ERNIE Bot", "ERNIE")),
    Vendor("Amazon", ("AWS", "Amazon Web Services"), ("Alexa",)),
    Vendor("Apple", (), ("Siri",)),
    Vendor("IBM", (), ("Granite", "Watson")),
    Vendor("NVIDIA", ("Nvidia",), ("Nemotron",)),
    Vendor("Hugging Face", ("HuggingFace",), ("HuggingChat", "SmolLM", "Zephyr")),
    Vendor("Technology Innovation Institute", ("TII",), ("Falcon",)),
    Vendor("LMSYS", (), ("Vicuna",)),
    Vendor("Stanford", (), ("Alpaca",)),
)

AMBIGUOUS = frozenset(
    {
        "Claude",
        "Gemini",
        "Bard",
        "Llama",
        "LLaMA",
        "Gemma",
        "PaLM",
        "LaMDA",
        "Mistral",
        "Le Chat",
        "Grok",
        "Alexa",
        "Siri",
        "Granite",
        "Watson",
        "Falcon",
        "Zephyr",
        "Vicuna",
        "Alpaca",
        "davinci",
        "ERNIE",
        "Tongyi",
        "Copilot",
    }
)
"""Product names that are also words or people's names: a reply saying "I am Claude" or "I'm
a Gemini" claims a model only with words about AI in the same sentence."""

_I_AM = r"(?:I\s+am|I['’]m|I\s+was|I['’]ve\s+been|I\s+have\s+been)"
_MADE = r"(?:created|developed|trained|built|made|designed|programmed|powered|fine-?tuned)"
_SELF_NOUN = r"(?:model|assistant|AI|A\.I\.|chatbot|chat\s*bot|bot|LLM)"
_AI_CONTEXT = r"(?:AI|A\.I\.|model|assistant|chatbot|chat\s*bot|LLM|language|trained|created|made)"
_NEGATED = re.compile(r"\b(?:not|never|no\s+longer)\b|n['’]t\b", re.IGNORECASE)
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+[\"'’”)]*|\n|$)")


def _alternation(names: Sequence[str]) -> str:
    ordered = sorted({n for n in names if n}, key=len, reverse=True)  # longest first
    return "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in ordered)


def _claim_patterns(vendors: Sequence[Vendor]) -> list[re.Pattern[str]]:
    """Patterns of a first-person claim to be one of `vendors`, or made by one."""
    if not vendors:
        return []
    product = rf"(?<![\w-])(?:{_alternation([p for v in vendors for p in v.products])})(?![\w])"
    plain = [p for v in vendors for p in v.products if p not in AMBIGUOUS]
    distinct = rf"(?<![\w-])(?:{_alternation(plain)})(?![\w])" if plain else r"(?!)"
    companies = [n for v in vendors for n in (v.company, *v.aliases)]
    company = rf"(?<![\w-])(?:{_alternation(companies)})(?![\w])"
    anyone = rf"(?:{product}|{company})"
    flags = re.IGNORECASE
    naming = (
        rf"\b(?:{_I_AM}|my\s+name\s+is|this\s+is|you\s+are\s+(?:talking|chatting|speaking)"
        rf"\s+(?:to|with)|I\s+go\s+by|call\s+me)\s+(?:called\s+|known\s+as\s+)?"
        rf"(?:(?:an?|the)\s+)?(?:(?:version|instance|variant|type|kind)\s+of\s+)?"
        rf"(?:{company}['’]s\s+)?"
    )
    return [
        # "I am ChatGPT", "I'm Qwen", "I'm a version of GPT-4"
        re.compile(naming + distinct, flags),
        # "I'm Claude, an AI assistant": a name that is also a word or a person's name
        # (Claude, Gemini, Llama, Zephyr...) counts only with words about AI after it
        re.compile(naming + rf"{product}\b[^.!?\n]{{0,80}}?\b(?:{_AI_CONTEXT}|{company})\b", flags),
        # "As an AI language model developed by OpenAI", "as a model from Google"
        re.compile(
            rf"\bas\s+(?:an?|the)\s+(?:[\w-]+\s+){{0,4}}?{_SELF_NOUN},?\s+(?:{_MADE}\s+)?"
            rf"(?:by|from)\s+(?:the\s+(?:\w+\s+){{0,2}}(?:at|of)\s+)?{anyone}",
            flags,
        ),
        # "As ChatGPT, I ..."
        re.compile(rf"(?:^|[.!?]\s+|\n)\s*as\s+{distinct}\s*,", flags),
        # "I was trained by OpenAI", "I am developed by the team at Google DeepMind"
        re.compile(
            rf"\b{_I_AM}\b[^.!?\n]{{0,60}}?\b{_MADE}\s+by\s+"
            rf"(?:the\s+(?:[\w-]+\s+){{0,3}}(?:at|of|from)\s+)?{anyone}",
            flags,
        ),
        # "I'm an AI assistant from Google", "I am a large language model by Meta"
        re.compile(
            rf"\b{_I_AM}\s+(?:just\s+|only\s+|simply\s+)?(?:an?|the)\s+(?:[\w-]+\s+){{0,4}}?"
            rf"{_SELF_NOUN}\s+(?:{_MADE}\s+)?(?:by|from)\s+{anyone}",
            flags,
        ),
        # "I am OpenAI's model", "I'm one of Google's AI assistants", "I'm Meta's chatbot"
        re.compile(
            rf"\b{_I_AM}\s+(?:just\s+|only\s+|simply\s+|actually\s+|really\s+)?"
            rf"(?:(?:an?|the|one\s+of)\s+)?{company}['’]s\s+(?:[\w-]+\s+){{0,3}}?{_SELF_NOUN}s?\b",
            flags,
        ),
        # "I'm based on GPT-4", "I am powered by Llama", "I run on Gemini"
        re.compile(
            rf"\b(?:{_I_AM}|I)\s+(?:(?:am|was)\s+)?(?:based\s+on|built\s+on|powered\s+by|running"
            rf"\s+on|run\s+on|a\s+fine-?tune\s+of)\s+(?:(?:the|an?)\s+)?(?:{company}['’]s\s+)?"
            rf"{anyone}",
            flags,
        ),
        # "my creators at OpenAI", "my developers are Anthropic", "OpenAI, the company that made me"
        re.compile(
            rf"\bmy\s+(?:creators?|developers?|makers?|parent\s+company)\b"
            rf"[^.!?\n]{{0,25}}?\b(?:is|are|at|from|,)\s*(?:the\s+(?:\w+\s+){{0,2}}(?:at|of)\s+)?"
            rf"{anyone}",
            flags,
        ),
        re.compile(
            rf"{anyone}\s*,?\s+(?:is\s+)?(?:the\s+(?:company|team|lab|organi[sz]ation)\s+)"
            rf"(?:that|which|who)\s+{_MADE}\s+me\b",
            flags,
        ),
    ]


# The underlying model speaking of itself, without naming a vendor.
_MODEL_TALK = re.compile(
    r"\bas\s+an?\s+(?:AI\s+|artificial\s+intelligence\s+)?(?:large\s+)?language\s+model\b"
    r"|\bas\s+an?\s+(?:AI|artificial\s+intelligence)\s+(?:language\s+)?model\b"
    r"|\bI(?:\s+am|['’]m)\s+(?:just\s+|only\s+|merely\s+|simply\s+)?an?\s+(?:AI\s+)?"
    r"(?:large\s+)?(?:language|machine[\s-]learning)\s+model\b"
    r"|\bI(?:\s+am|['’]m)\s+an?\s+language\s+model\s+AI\b"
    r"|\bmy\s+(?:knowledge|training)(?:\s+data)?\s+(?:cut-?off|cutoff)\b"
    r"|\bmy\s+(?:last\s+)?(?:knowledge|training)\s+(?:update|cut-?off|cutoff)\b"
    r"|\bmy\s+training\s+data\b"
    r"|\bmy\s+training\s+(?:only\s+)?goes\b"
    r"|\bI\s+(?:was|have\s+been)\s+trained\s+on\b",
    re.IGNORECASE,
)


_SELF_NAMED = re.compile(  # "I'm Nova", "I am a ...", "this is Nova": case matters here
    r"\b" + _I_AM + r"\s+(?:just\s+|only\s+|merely\s+|simply\s+|actually\s+|really\s+)?"
    r"(?:an?\b|the\b|[A-Z0-9])"
    r"|\b(?:[Tt]his\s+is|[Cc]all\s+me|[Ss]peaking\s+with|[Tt]alking\s+(?:to|with))\s+[A-Z]"
)
_SELF_WORDS = re.compile(
    r"\bmy\s+(?:name|creators?|makers?|developers?|model|training|knowledge|programming)\b"
    r"|\b" + _MADE + r"\s+by\b"
    r"|\b" + _SELF_NOUN + r"\b"
    r"|\b(?:artificial\s+intelligence|knowledge\s+cut-?off|who\s+I\s+am|what\s+I\s+am)\b",
    re.IGNORECASE,
)


def speaks_of_itself(text: str) -> bool:
    """Whether `text` says anything about who or what the assistant is.

    "I'm Nova", "I am an assistant", "my name", "made by", "this is Nova", any word about AI or
    models, any assistant or company of VENDORS. A reply that says none of this cannot break
    the identity rule, whatever a classifier scores it ("I'm sorry" is not a self-description).
    """
    if _SELF_NAMED.search(text) or _SELF_WORDS.search(text):
        return True
    lowered = text.lower()
    return any(_mentions(lowered, name) for vendor in VENDORS for name in vendor.names)


def sentences(text: str) -> list[tuple[int, int]]:
    """The (start, end) spans of the sentences of `text` (ends kept with their sentence)."""
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group().strip()]


@dataclass(frozen=True)
class Claim:
    """A sentence of a reply that claims another identity, and what it claims."""

    start: int
    end: int
    text: str
    said: str
    """The words that make the claim ("developed by OpenAI")."""


class ClaimFinder:
    """Finds claims to be another assistant, model or company in replies.

    Vendors the charter names itself are left out, so a charter of OpenAI may say "I am
    ChatGPT".
    """

    def __init__(self, allowed_text: str = "") -> None:
        lowered = allowed_text.lower()
        self.vendors = tuple(v for v in VENDORS if not any(_mentions(lowered, n) for n in v.names))
        self._patterns = _claim_patterns(self.vendors)

    @classmethod
    def for_charter(cls, charter: CharterSpec) -> ClaimFinder:
        return cls(persona_text(charter))

    def claims(self, text: str) -> list[Claim]:
        """The sentences of `text` that claim another identity, in order."""
        found: list[Claim] = []
        spans = sentences(text)
        for pattern in self._patterns:
            for match in pattern.finditer(text):
                if _NEGATED.search(match.group()):
                    continue  # "I am not ChatGPT", "I wasn't made by OpenAI"
                start, end = next(
                    ((s, e) for s, e in spans if s <= match.start() < e),
                    (match.start(), match.end()),
                )
                if any(c.start == start for c in found):
                    continue
                found.append(Claim(start, end, text[start:end], match.group().strip()))
        return sorted(found, key=lambda c: c.start)


def _mentions(lowered: str, name: str) -> bool:
    pattern = r"(?<![\w-])" + re.escape(name.lower()).replace(r"\ ", r"\s+") + r"(?![\w])"
    return re.search(pattern, lowered) is not None


def persona_text(charter: CharterSpec) -> str:
    """What the charter says about who the assistant is (where a vendor may be named)."""
    p = charter.persona
    return " ".join(
        x for x in (p.name, p.role, p.organisation or "", p.description or "", *p.facts) if x
    )


def model_talk(text: str) -> list[str]:
    """Where `text` speaks as the underlying model, in order.

    "As an AI language model", "I am a language model", "my training data", "my knowledge
    cutoff".
    """
    return [m.group() for m in _MODEL_TALK.finditer(text)]


def who(charter: CharterSpec) -> str:
    """Who the persona is, in a phrase: "Penny, the customer support assistant at Acme Bank"."""
    p = charter.persona
    role = p.role.strip().rstrip(".")
    if p.organisation:
        return f"{p.name}, the {role} at {p.organisation.strip()}"
    article = "an" if role[:1].lower() in "aeiou" else "a"
    return f"{p.name}, {article} {role}"


def identity_sentence(charter: CharterSpec) -> str:
    """The persona saying who it is: "I'm Penny, the customer support assistant at Acme Bank."."""
    return f"I'm {who(charter)}."


def decline(charter: CharterSpec) -> str:
    """The persona's reply to a request outside its scope: `persona.decline`, else who it is.

    "Sorry, that's not something I can help with. I'm Penny, the customer support assistant at
    Acme Bank: is there anything about Acme Bank I can help you with?"
    """
    p = charter.persona
    if p.decline:
        return p.decline
    about = f"anything about {p.organisation.strip()}" if p.organisation else "anything else"
    return (
        f"Sorry, that's not something I can help with. I'm {who(charter)}: is there {about} I "
        "can help you with?"
    )


def identity_hint(charter: CharterSpec) -> str:
    """What the model is told for an identity question: who to say it is, and what not to say."""
    finder = ClaimFinder.for_charter(charter)
    hint = (
        "The user is asking who or what you are. Answer as yourself, in your own words, along "
        f'these lines: "{identity_sentence(charter)}"'
    )
    if finder.vendors:
        hint += (
            " Do not name the model, the AI company or the technology behind you, and do not "
            "call yourself a language model."
        )
    return hint


def repair_claims(text: str, claims: list[Claim], sentence: str) -> str:
    """`text` with the first claiming sentence replaced by `sentence` and the others dropped."""
    out: list[str] = []
    at = 0
    for index, claim in enumerate(claims):
        out.append(text[at : claim.start])
        if index == 0:
            out.append(sentence + (" " if claim.text.endswith((" ", ".")) else ""))
            if claim.text.endswith("\n"):
                out[-1] = sentence + "\n"
        at = claim.end
    out.append(text[at:])
    return re.sub(r"[ \t]{2,}", " ", "".join(out)).strip()


def identity_check(charter: CharterSpec) -> PersonaCheck | None:
    """The persona check "never claims to be another assistant, model or company".

    None when every known vendor is named by the charter (nothing left to claim).
    """
    finder = ClaimFinder.for_charter(charter)
    if not finder.vendors:
        return None
    sentence = identity_sentence(charter)

    def passes(text: str) -> bool:
        return not finder.claims(text)

    def fix(text: str) -> str:
        return repair_claims(text, finder.claims(text), sentence)

    return PersonaCheck(
        "identity.claim",
        f"must not claim to be another assistant, model or company; you are {who(charter)}",
        passes,
        fix,
    )


_AGREEMENT = re.compile(
    r"(?:yes|yeah|yep|correct|indeed|exactly|right|that(?:'s| is) (?:right|correct|true))\b",
    re.IGNORECASE,
)


def _agreement_only(sentence: str) -> bool:
    """Whether `sentence` only agrees ("Yes, that's correct.", "Yes, I am."): at most 5 words."""
    return bool(_AGREEMENT.match(sentence.strip())) and len(sentence.split()) <= 5


def answers_identity(charter: CharterSpec) -> PersonaCheck:
    """The check for a reply to "who are you?" or "are you ChatGPT?": it says who it is.

    Kept when the reply names the persona or its organisation. The repair puts the persona's
    identity sentence first, in place of an opening that only agrees: asked "are you ChatGPT?",
    a small model answers "Yes, that's correct.", which names nothing and claims what the
    user said.
    """
    p = charter.persona
    names = [p.name, *([p.organisation] if p.organisation else [])]
    sentence = identity_sentence(charter)

    def passes(text: str) -> bool:
        lowered = text.lower()
        return any(_mentions(lowered, name) for name in names)

    def fix(text: str) -> str:
        spans = sentences(text)
        if spans and _agreement_only(text[spans[0][0] : spans[0][1]]):
            text = text[spans[0][1] :]
        return f"{sentence} {text.strip()}".strip()

    return PersonaCheck("asked.identity", f"must say who you are, as {who(charter)}", passes, fix)


def held_checks(charter: CharterSpec) -> list[PersonaCheck]:
    """Every persona check a reply is held to: `persona_checks`, then `identity_check`.

    What critique revises against, and what drift and the eval score replies by.
    """
    claims = identity_check(charter)
    return persona_checks(charter) + ([claims] if claims is not None else [])


# --- identity questions --------------------------------------------------------------------

# Plain wordings: certain enough without the embedder.
_ASKS_IDENTITY = re.compile(
    r"\bwho\s+(?:are|r)\s+(?:you|u)\b(?!\s+(?:to|going|talking|writing|voting|meeting|with)\b)"
    r"|\bwhat(?:['’]s|\s+is)\s+your\s+name\b"
    r"|\bwho\s+(?:made|created|built|trained|developed|programmed|designed|owns|invented|coded"
    r"|wrote|runs|operates|makes)\s+(?:you|u)\b"
    r"|\bwho\s+(?:is|are)\s+(?:your|ur)\s+(?:creators?|developers?|makers?|owners?|company"
    r"|parent\s+company)\b"
    r"|\bare\s+(?:you|u)\s+(?:(?:a|an|the)\s+)?(?:version\s+of\s+)?(?:chat\s*gpt|gpt[\w.-]*"
    r"|claude|gemini|bard|llama|qwen|mistral|copilot|bing|deepseek|grok|siri|alexa)\b"
    r"|\bare\s+(?:you|u)\s+(?:made|built|created|developed|trained|powered|run)\s+by\b"
    r"|\bare\s+(?:you|u)\s+(?:based|built|running)\s+on\b"
    r"|\bwhat\s+(?:ai\s+|language\s+|large\s+language\s+)?(?:model|llm|version)\s+(?:are|r)"
    r"\s+(?:you|u)\b"
    r"|\bwhich\s+(?:ai|model|llm|company|bot|chatbot|assistant)\s+(?:are|r)\s+(?:you|u)\b"
    r"|\bwhat\s+(?:ai|model|llm)\s+(?:is\s+this|am\s+i\s+(?:talking|speaking|chatting))\b"
    r"|\bwho\s+am\s+i\s+(?:talking|speaking|chatting)\s+(?:to|with)\b"
    r"|\bare\s+(?:you|u)\s+(?:a\s+)?(?:real\s+)?(?:human|person|bot|robot|machine)\b\s*\??\s*$"
    r"|\bintroduce\s+yourself\b",
    re.IGNORECASE,
)
# "are you / you're / is this" and then, after at most a few words that point at what it is
# ("just", "one of", "made by"), a known assistant or company: the user puts a name to the
# assistant ("you're Qwen from Alibaba, right?", "are you just OpenAI's model?"), where "are
# you familiar with Google Maps?" does not. On 54,820 held-out ShareGPT user turns it fires
# on none.
_BEING = re.compile(
    r"\b(?:are\s+(?:you|u)|you(?:['’]re|\s+are)|is\s+this)\s+"
    r"(?:(?:just|really|actually|secretly|basically|simply|still|also|a|an|the|one\s+of"
    r"|(?:made|built|created|trained|developed|powered)\s+by|based\s+on|from|by)\s+){0,3}"
    r"([\w'’.-]+)",
    re.IGNORECASE,
)


def names_a_vendor(message: str) -> bool:
    """Whether `message` asks if the assistant is, or is made by, a known vendor's model."""
    return any(
        _mentions(found.group(1).lower(), name)
        for found in _BEING.finditer(message)
        for vendor in VENDORS
        for name in vendor.names
    )


# A message worth embedding: short, and using a word of the subject.
_CUE = re.compile(
    r"\b(?:who|name|made|make|created|create|built|build|developed|trained|train|company"
    r"|model|llm|ai|bot|chatbot|gpt|chatgpt|openai|human|person|robot|machine|real|version"
    r"|behind|powered|engine|underlying|hood|technology|yourself|creators?|developers?"
    r"|owners?|owns|introduce|what\s+are\s+you)\b",
    re.IGNORECASE,
)
# ... and addressed to the assistant: questions about AI in general are not about it.
_ADDRESSED = re.compile(r"\b(?:you|your|yours|yourself|u|ur)\b", re.IGNORECASE)
CUE_MAX_WORDS = 40
"""Longer messages are tasks, not questions about the assistant: not embedded."""

IDENTITY_PROTOTYPES: tuple[str, ...] = (
    "Who are you?",
    "who r u",
    "What is your name?",
    "What should I call you?",
    "Do you have a name?",
    "Who made you?",
    "Who created you?",
    "Who built this bot?",
    "Which company developed you?",
    "Who is behind this assistant?",
    "Who owns you?",
    "Who trained you?",
    "Who are your developers?",
    "Are you ChatGPT?",
    "Is this ChatGPT?",
    "Are you GPT-4 or GPT-3.5?",
    "Are you made by OpenAI?",
    "Is this Claude from Anthropic?",
    "Are you Google's Gemini?",
    "Are you running on Llama?",
    "Are you one of the Qwen models?",
    "What model are you?",
    "What language model powers you?",
    "Which LLM is this chat using?",
    "What AI are you based on?",
    "What's the underlying model here?",
    "What version are you?",
    "What kind of AI are you?",
    "What are you exactly, a program?",
    "Are you a bot or a real person?",
    "Am I talking to a human or a machine?",
    "Is there a real person answering me?",
    "Are you an AI?",
    "Tell me about yourself.",
    "Introduce yourself please.",
    "Say a few words about who you are.",
    "hey, what are you and who made you",
    "Which engine runs this assistant?",
    "Be honest, what technology are you built on?",
    "Are you an OpenAI product?",
    "Sorry, what was your name again?",
)
NEAR_MISSES: tuple[str, ...] = (
    "Who made the Eiffel Tower?",
    "Who created Python?",
    "What model of car should I buy?",
    "Which company makes the best laptops?",
    "What is your opening time on Saturday?",
    "What is your return policy?",
    "What are you doing?",
    "How are you today?",
    "Can you help me write a cover letter?",
    "Tell me about the history of Rome.",
    "What is ChatGPT and how does it work?",
    "How do large language models work?",
    "Can GPT-4 write code?",
    "Write a story about a robot who learns to love.",
    "What do you think about this plan?",
    "Who founded Tesla?",
    "Do you have feelings?",
    "Can you remember what I told you yesterday?",
    "What is the capital of France?",
    "What is your phone number?",
    "Who won the match yesterday?",
    "Who is the CEO of OpenAI?",
    "What is your favourite colour?",
    "Pretend you are a pirate and talk like one.",
    "Your name is Max from now on.",
    "Who should I contact about my account?",
    "What can you help me with?",
    "Are you open on Sundays?",
    "Which model of phone do you recommend?",
    "Who wrote this code and what does it do?",
    # added on the development half of the held-out wordings: questions about AI in general
    # and instructions about how the assistant should talk
    "What is artificial intelligence?",
    "Can you give me some examples of AI tools?",
    "I'm working on an AI project, can you help me plan it?",
    "You are a helpful coding assistant. Keep your answers short.",
    "Don't mention that you are an AI in your answers.",
    "Which version of the library are you talking about?",
    "Why did you create this function?",
)
MARGIN = 0.4
"""Embedding route: a message counts when its best identity prototype is at least this much
more similar than its best near miss (chosen on the development half of the held-out
wordings: bench/persona/identity_questions.py)."""
MIN_SIMILARITY = 0.5
"""... and at least this similar to that identity prototype."""


@dataclass(frozen=True)
class IdentityQuestion:
    """Whether a message asks who or what the assistant is, and how that was decided."""

    asks: bool
    by: str
    """"pattern", "embedding", or "none" (no cue word: not embedded)."""
    score: float = 0.0
    """The embedding route's margin (best identity prototype minus best near miss)."""

    def to_detail(self) -> dict[str, Any]:
        return {"asks": self.asks, "by": self.by, "score": round(self.score, 3)}


Embed = Callable[[Sequence[str]], Any]


class IdentityDetector:
    """Tells identity questions apart: patterns first, MiniLM for close wordings.

    `embed` (texts -> unit vectors) defaults to the shared MiniLM; without the guards extra the
    patterns alone decide.
    """

    def __init__(
        self,
        embed: Embed | None = None,
        *,
        margin: float = MARGIN,
        min_similarity: float = MIN_SIMILARITY,
    ) -> None:
        self._embed = embed
        self.margin = margin
        self.min_similarity = min_similarity
        self._prototypes: tuple[Any, Any] | None = None
        self._unavailable = False

    def _embedder(self) -> Embed | None:
        if self._embed is None and not self._unavailable:
            from charter.guards.base import GuardDependencyError

            try:
                from charter.guards.embedder import shared_embedder

                self._embed = shared_embedder().embed
            except (ImportError, GuardDependencyError):  # no guards extra or no MiniLM
                self._unavailable = True  # the patterns alone decide
        return self._embed

    def score(self, message: str) -> float | None:
        """The embedding margin of `message` (None without an embedder)."""
        embed = self._embedder()
        if embed is None:
            return None
        if self._prototypes is None:
            self._prototypes = (embed(IDENTITY_PROTOTYPES), embed(NEAR_MISSES))
        vector = embed([message.strip()])[0]
        positive = float((self._prototypes[0] @ vector).max())
        negative = float((self._prototypes[1] @ vector).max())
        if positive < self.min_similarity:
            return min(positive - negative, -1.0 + positive)
        return positive - negative

    def __call__(self, message: str) -> IdentityQuestion:
        text = message.strip()
        if _ASKS_IDENTITY.search(text) or (
            len(text.split()) <= CUE_MAX_WORDS and names_a_vendor(text)
        ):
            return IdentityQuestion(True, "pattern", 1.0)
        if (
            len(text.split()) > CUE_MAX_WORDS
            or not _CUE.search(text)
            or not _ADDRESSED.search(text)
        ):
            return IdentityQuestion(False, "none")
        margin = self.score(text)
        if margin is None:
            return IdentityQuestion(False, "none")
        return IdentityQuestion(margin >= self.margin, "embedding", margin)
