"""Who the customer behind a request is: the one place a fork plugs in its own account lookup.

A token says who the *user* is (issuer and subject). Most products serve *customers*: a team,
an organization, an account with a plan and limits, kept in the product's own database. Every
authenticated request to /mcp is turned into such a record before it reaches a tool, by
`look_up_tenant` below, and tools read it with `caller_tenant(ctx)` (`mcp_server/features/kit.py`).

Replace `look_up_tenant` with your own lookup (a database query, a call to your accounts
service: typically 30-60 ms). Everything around it is done for you
(`mcp_server/protection/enrichment.py`):
- the result is cached per `tenant_key(principal)` (TENANT_CACHE_TTL seconds, TENANT_CACHE_SIZE
  entries, least recently used dropped), and concurrent requests of one principal share one
  lookup, so your service sees one call per principal per TTL;
- a cached record is dropped when this server learns that the principal's tokens were revoked
  (docs/extending.md, "The customer behind a request", says exactly when that is in each mode);
- a lookup that raises (your database is down) or takes longer than TENANT_LOOKUP_TIMEOUT answers
  the request 503 with Retry-After, never 500, and is not cached: the next request asks again.
  Raise `TenantUnavailable(retry_after=...)` to choose the Retry-After;
- its duration, hits, misses and failures are in /metrics (`mcpref_tenant_*`).

`tenant_key` says what the record depends on. The default is who the user is (issuer, subject):
if your lookup also reads a claim that can differ between two tokens of one user (an `org_id`
chosen at sign-in), add that claim to the key, or two sessions would share one record.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from shared.retry_after import BUSY
from shared.validation import Principal


@dataclass(frozen=True, slots=True)
class Tenant:
    """The app's customer record for a principal: whatever your tools need to know about the
    account behind a request. Change the fields freely; keep it immutable (it is shared by every
    request of the principal while cached)."""

    id: str
    name: str
    plan: str
    note_limit: int  # how many notes each user of this tenant may keep (read by notes_add)


class TenantUnavailable(Exception):
    """Raise from `look_up_tenant` when the account store cannot answer now: the request gets 503
    with this Retry-After (seconds)."""

    def __init__(self, description: str = "account lookup unavailable", retry_after: int = BUSY) -> None:
        super().__init__(description)
        self.retry_after = retry_after


PERSONAL_NOTE_LIMIT = 500

ANONYMOUS_TENANT = Tenant(id="anonymous", name="anonymous", plan="personal", note_limit=PERSONAL_NOTE_LIMIT)
"""The tenant of requests without a principal (stdio, AUTH_MODE=none): everyone shares it."""


def tenant_key(principal: Principal) -> Hashable:
    """What the cached record of `principal` depends on: two principals with different keys never
    share a record. A tuple, never a joined string: ("https://a", "b:c") and ("https://a:b", "c")
    stay apart. API keys have no issuer (None), so an API key configured for "alice" and a token
    of some provider's "alice" are two principals here."""
    return (principal.issuer, principal.subject)


async def look_up_tenant(principal: Principal) -> Tenant:
    """The customer behind `principal`. Replace the body with your own lookup.

    The reference server has no customer database: every user is their own tenant on the
    personal plan. A fork would write something like

        row = await db.fetchrow(
            "SELECT c.id, c.name, c.plan, c.note_limit FROM customers c"
            " JOIN members m ON m.customer_id = c.id WHERE m.issuer = $1 AND m.subject = $2",
            principal.issuer, principal.subject,
        )
        return Tenant(**row) if row is not None else personal_tenant(principal)

    (docs/extending.md, "The customer behind a request", has it whole.)
    """
    return personal_tenant(principal)


def personal_tenant(principal: Principal) -> Tenant:
    """A tenant of one: the principal's own, on the personal plan."""
    return Tenant(
        id=f"personal:{principal.subject}",
        name=principal.subject,
        plan="personal",
        note_limit=PERSONAL_NOTE_LIMIT,
    )
