"""The artifacts the SSO domain stores, and their canonical keys (decisions.md §6).

A key is ``<protocols.<p>.key_prefix>:<segment>:<id>``, e.g. ``oauth:access_token:abc``.
``type`` is the name a user listing shows; ``owner`` lists the record fields that name
the user the artifact belongs to (the first string present wins), so records written
by other programs (``username``, camelCase ``userId``) are attributed too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenginx.config import ProtocolsConfig

_USER = ("user_id", "username", "userId")


@dataclass(frozen=True, slots=True)
class Kind:
    type: str
    protocol: str  # "oauth" | "saml" | "cas": where the key prefix comes from
    segment: str
    owner: tuple[str, ...] = _USER

    def prefix(self, protocols: ProtocolsConfig) -> bytes:
        base = getattr(protocols, self.protocol).key_prefix
        return f"{base}:{self.segment}:".encode()

    def key(self, protocols: ProtocolsConfig, id_: str) -> bytes:
        return self.prefix(protocols) + id_.encode()

    def owner_of(self, record: dict[str, Any]) -> str:
        for name in self.owner:
            value = record.get(name)
            if type(value) is str and value:
                return value
        return ""


ACCESS_TOKEN = Kind("access_token", "oauth", "access_token")
TOKEN = Kind("access_token", "oauth", "token")  # Variant A's key (OAUTH.SET)
REFRESH_TOKEN = Kind("refresh_token", "oauth", "refresh_token")
AUTH_CODE = Kind("auth_code", "oauth", "auth_code")
ID_TOKEN = Kind("id_token", "oauth", "id_token", ("sub",))
SAML_SESSION = Kind("saml_session", "saml", "session", ("name_id",))
SAML_ARTIFACT = Kind("saml_artifact", "saml", "artifact", ())
SAML_LOGOUT = Kind("saml_logout", "saml", "logout", ())
CAS_TGT = Kind("cas_tgt", "cas", "tgt")
CAS_ST = Kind("cas_st", "cas", "st")
CAS_PGT = Kind("cas_pgt", "cas", "pgt")
CAS_PT = Kind("cas_pt", "cas", "pt")

# What the per-user index may point to (artifacts and logout requests have no user).
INDEXED = (
    ACCESS_TOKEN, TOKEN, REFRESH_TOKEN, AUTH_CODE, ID_TOKEN, SAML_SESSION,
    CAS_TGT, CAS_ST, CAS_PGT, CAS_PT,
)


def kind_of(protocols: ProtocolsConfig, key: bytes) -> tuple[Kind, str] | None:
    """The indexed kind of ``key`` and the artifact id in it."""
    for kind in INDEXED:
        prefix = kind.prefix(protocols)
        if key.startswith(prefix):
            return kind, key[len(prefix):].decode("utf-8", "replace")
    return None
