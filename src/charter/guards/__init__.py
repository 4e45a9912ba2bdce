"""Guards: one module per guard; each returns a typed verdict."""

from charter.guards.base import Guard, GuardVerdict, Subject

__all__ = ["Guard", "GuardVerdict", "Subject"]
