"""A conversation kept in the store: history in, turn and trace out, resumable by id."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from charter.errors import CharterError
from charter.models.base import Message
from charter.turn import Carry

if TYPE_CHECKING:
    from charter.assistant import Charter
    from charter.reply import Reply
    from charter.store.sqlite import Store


class ConversationNotFoundError(CharterError):
    """The store has no conversation by that id, or it belongs to another charter."""


class Conversation:
    """A conversation kept in the store: each turn is answered with its history, then recorded.

    Without `conversation_id` a new conversation is created; with one, the stored conversation is
    resumed (ConversationNotFoundError when it is missing or belongs to another charter). `user`
    keys the rate limit and the stored profile.
    """

    def __init__(
        self,
        charter: Charter,
        store: Store,
        conversation_id: str | None = None,
        *,
        user: str | None = None,
    ) -> None:
        self.charter = charter
        self.store = store
        self.user = user
        if conversation_id is None:
            self.id = store.create_conversation(charter.spec.id)
            return
        owner = store.conversation_charter(conversation_id)
        if owner is None:
            raise ConversationNotFoundError(f"no conversation {conversation_id!r} in {store.path}")
        if owner != charter.spec.id:
            raise ConversationNotFoundError(
                f"conversation {conversation_id!r} belongs to charter {owner!r}, "
                f"not {charter.spec.id!r}"
            )
        self.id = conversation_id

    async def asend(self, text: str, *, on_delta: Callable[[str], None] | None = None) -> Reply:
        history = self.store.context_messages(self.id)
        profile = self.store.profile(self.user) if self.user else {}
        reply = await self.charter.arespond(
            [*history, Message(role="user", content=text)],
            on_delta=on_delta,
            user=self.user,
            carry=self._carry(),
            profile=profile,
        )
        self.store.record_turn(
            self.id,
            user=text,
            reply=reply.text,
            blocked=reply.blocked,
            block_reason=reply.block_reason,
            prompt_tokens=reply.usage.prompt_tokens,
            completion_tokens=reply.usage.completion_tokens,
            ms=reply.ms,
            trace=reply.trace.to_list(),
            escalations=reply.escalations,
            carry=reply.carry.to_dict(),
        )
        signals = reply.signals
        if self.user and signals and signals.expertise and signals.expertise_source == "wording":
            # Remember what the wording showed, so the next conversation starts from it.
            self.store.set_profile(self.user, {"expertise": signals.expertise})
        return reply

    def _carry(self) -> Carry:
        """What the latest turn handed over to this one.

        For a turn saved before turns kept it: its blocked streak, counted from the stored turns.
        """
        saved = self.store.last_carry(self.id)
        if saved is not None:
            return Carry.from_dict(saved)
        return Carry(blocked_streak=self.store.consecutive_blocked(self.id))

    def send(self, text: str, *, on_delta: Callable[[str], None] | None = None) -> Reply:
        """Blocking `asend` (inside a running event loop, on a worker thread)."""
        from charter.assistant import run_blocking

        return run_blocking(lambda: self.asend(text, on_delta=on_delta))
