"""Errors Charter raises on purpose. Each says what went wrong and what to do about it."""

from __future__ import annotations


class CharterError(Exception):
    """Base class for every error Charter raises on purpose."""


class ModelError(CharterError):
    """A model backend failed: unreachable, timed out, or answered with something unusable."""


class ModelNotAvailableError(ModelError):
    """Model weights that cannot be found or fetched."""


class WeightsIntegrityError(ModelError):
    """A weights file whose SHA-256 does not match the official one. Never loaded."""


class StoreError(CharterError):
    """The conversation store cannot be opened or migrated."""


class MissingExtraError(CharterError):
    """An optional part used without its extra installed.

    The message names the extra (`charter.extras.missing_extra_message`).
    """
