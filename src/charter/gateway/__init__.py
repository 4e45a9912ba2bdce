"""The gateway: Charter behind an OpenAI-compatible HTTP API (`charter serve`)."""

from charter.gateway.app import create_app

__all__ = ["create_app"]
