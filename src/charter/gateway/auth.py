"""API keys: who is calling, for which tenant, and which charters they may use.

A key is `chk_<id>_<secret>`: the id is public (it names the key in lists and audit records),
the secret is 32 random bytes. Only the SHA-256 of the whole key is stored: the key is shown
once, when it is made, and cannot be read back. (A fast hash is right here: the secret is
random, not a password, so there is nothing to guess.) Keys are revoked, never deleted, so
audit records keep naming the key that made them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from charter.store.records import ApiKey, GatewayRecords

LOCAL_TENANT = "local"
"""The tenant of every call to a gateway without keys (loopback only)."""
_KEY = re.compile(r"^chk_([a-z0-9]{8})_[A-Za-z0-9_-]{43}$")


def hash_key(key: str) -> str:
    """The SHA-256 of the whole key, as hex: what the store keeps instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(store: GatewayRecords, tenant: str, charters: list[str]) -> tuple[str, str]:
    """Make a key for `tenant`; returns (key id, the key). The key is not stored."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", tenant):
        raise ValueError("a tenant is 1-64 letters, digits, '_', '.' or '-'")
    key_id = secrets.token_hex(4)
    key = f"chk_{key_id}_{secrets.token_urlsafe(32)}"
    store.add_api_key(key_id, hash_key(key), tenant, charters or ["*"])
    return key_id, key


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant, and the API key used (None when the gateway has no keys)."""

    tenant: str
    key_id: str | None
    key: ApiKey | None

    def may_use(self, charter_id: str) -> bool:
        return self.key is None or self.key.allows(charter_id)

    def user(self, named: str | None) -> str:
        """Whom a turn is for: rate limits and profiles are kept per user, within the tenant.

        A request's `user` field is the caller's own name for its end user, so two tenants
        may both send "alice": with keys, the tenant is put in front ("acme/alice") so they
        never share a rate-limit bucket or a profile. A request without `user` counts as
        the tenant itself; a gateway without keys (loopback only) uses the name as sent.
        """
        if named is None:
            return self.tenant
        return named if self.key is None else f"{self.tenant}/{named}"


def authenticate(store: GatewayRecords, authorization: str | None) -> Caller | str:
    """The caller of a request with this `Authorization` header, or why it is refused."""
    if authorization is None or not authorization.lower().startswith("bearer "):
        return "missing API key: send 'Authorization: Bearer <key>'"
    key = authorization[7:].strip()
    if not _KEY.match(key):
        return "malformed API key"
    found = store.api_key(hash_key(key))
    if found is None:
        return "unknown or revoked API key"
    return Caller(found.tenant, found.id, found)
