"""The SSO domain, written once on top of the keyspace interface.

Every door reaches it the same way: through the extension commands of
``tokenginx.commands.{oauth,saml,cas,sso}`` (docs/sso-commands.md), run by the gate.

=================  ===========================================================
module             what it knows
=================  ===========================================================
``context``        one operation's database, settings, clock reading and events
``kinds``          the artifacts and their canonical keys (decisions.md §6)
``index``          the per-user index ``sso:user:{user}``
``oauth``          access/refresh tokens, introspection, revocation
``grants``         authorization codes (one use) and ID-token claims
``saml``           sessions, NameID lookup, artifacts (one use), logout requests
``cas``            TGT, ST, PGT, PT and their validation
``users``          a user's live artifacts; revoke them all
=================  ===========================================================
"""

from tokenginx.sso.context import SSOContext

__all__ = ["SSOContext"]
