"""The gateway: Charter behind an OpenAI-compatible HTTP API (`charter serve`)."""

import json

from charter.gateway.app import charter_lifespan, create_app


def openapi_text() -> str:
    """The gateway's OpenAPI schema (published as docs/gateway.openapi.json)."""
    return json.dumps(create_app({}, load=False).openapi(), indent=2, sort_keys=True) + "\n"


__all__ = ["charter_lifespan", "create_app", "openapi_text"]
