"""How revocation reaches the MCP server (shared/revocations.py), from each place it can come from.

External mode: introspection answering "inactive" for a token that was active when last asked and
has not expired yet is the only news of a revocation at another server; a token that merely
expired is not one. Internal mode: every way our own authorization server ends a user's tokens
reports that user (`auth_server.audit.AuditLog`), checked here through the real endpoints.
"""

from __future__ import annotations

import pytest

from auth_server.audit import REVOKING_EVENTS, AuditLog
from shared.revocations import RevocationFeed
from shared.validation import TokenRejected
from shared.validators.introspection import IntrospectionValidator
from tests.integration.rs.harness import RS_CLIENT_ID, RS_CLIENT_SECRET, LocalServer, MiniAuthorizationServer
from tests.integration.rs.test_validators import RESOURCE, FakeClock, authority

__all__ = ["authority"]  # the fixture: a MiniAuthorizationServer on 127.0.0.1

SCOPES = ["mcp:tools:read"]


def heard(feed: RevocationFeed) -> list[tuple[str | None, str]]:
    revoked: list[tuple[str | None, str]] = []
    feed.subscribe(lambda issuer, subject: revoked.append((issuer, subject)))
    return revoked


def validator(
    authority: tuple[MiniAuthorizationServer, LocalServer], feed: RevocationFeed, clock: FakeClock
) -> IntrospectionValidator:
    mini, server = authority
    return IntrospectionValidator(
        endpoint=server.url + "/introspect",
        client_id=RS_CLIENT_ID,
        client_secret=RS_CLIENT_SECRET,
        resource=RESOURCE,
        issuer=mini.issuer,
        cache_ttl=30,
        revocations=feed,
        clock=clock,
    )


async def test_introspection_reports_a_token_revoked_while_it_was_cached(
    authority: tuple[MiniAuthorizationServer, LocalServer],
) -> None:
    mini, _ = authority
    feed, clock = RevocationFeed(), FakeClock()
    revoked = heard(feed)
    checker = validator(authority, feed, clock)
    token = mini.mint_opaque("alice", SCOPES)
    await checker.validate(token)
    mini.revoke(token)
    clock.now += 31  # the cached answer lapses; the AS now says inactive
    with pytest.raises(TokenRejected):
        await checker.validate(token)
    assert revoked == [(mini.issuer, "alice")]
    with pytest.raises(TokenRejected):
        await checker.validate(token)  # the inactive answer, from the negative cache: no news
    assert revoked == [(mini.issuer, "alice")]
    await checker.aclose()


async def test_an_expired_or_never_seen_token_is_no_revocation(
    authority: tuple[MiniAuthorizationServer, LocalServer],
) -> None:
    mini, _ = authority
    feed, clock = RevocationFeed(), FakeClock()
    revoked = heard(feed)
    checker = validator(authority, feed, clock)
    short = mini.mint_opaque("alice", SCOPES, exp=int(clock.now) + 10)
    await checker.validate(short)
    mini.revoke(short)  # the AS forgot it, as it forgets expired tokens
    clock.now += 11  # and it has expired
    with pytest.raises(TokenRejected):
        await checker.validate(short)
    with pytest.raises(TokenRejected):
        await checker.validate("never-issued")
    assert revoked == []
    await checker.aclose()


def test_every_event_that_ends_a_users_tokens_reports_the_user_and_nothing_else_does() -> None:
    reported: list[str] = []
    audit = AuditLog(enabled=False, on_revoked=reported.append)
    audit.record("login_succeeded", subject="alice")
    audit.record("token_issued", subject="alice", grant_type="authorization_code")
    audit.record("logout", subject="alice")  # a browser session, not a token
    audit.record("code_replay", client_id="app")  # a replay without proof: the grant is kept
    assert reported == []
    for event in sorted(REVOKING_EVENTS):
        audit.record(event, subject=f"user-of-{event}")
    assert reported == [f"user-of-{event}" for event in sorted(REVOKING_EVENTS)]
