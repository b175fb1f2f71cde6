"""Per-request principal enrichment (mcp_server/tenants.py), through real servers.

Every authenticated request gets its tenant record before a tool runs; the notes tools read it.
A fork's lookup is plugged in the way a fork would (`create_app(..., tenant_lookup=...)` stands in
for editing `look_up_tenant`); it counts its calls, so the tests see what the cache saves, what
concurrent requests share, what a revocation drops, and that a failing lookup is a 503, never a 500.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from mcp_server.protection.enrichment import UNAVAILABLE_DESCRIPTION
from mcp_server.tenants import Tenant, TenantUnavailable
from shared.validation import Principal
from tests.e2e.oauth_flow import mint, revoke
from tests.integration.rs.conftest import (
    CALLBACK,
    FORGEABLE_KINDS,
    MODERN,
    TOKEN_KINDS,
    USER_PASSWORD,
    Mcp,
    Rs,
    StartRs,
)


class CountingLookup:
    """A fork's lookup: a tenant per user, `note_limit` notes each; it can fail, hang or be held."""

    def __init__(self, note_limit: int = 500) -> None:
        self.calls: Counter[str] = Counter()
        self.note_limit = note_limit
        self.failure: BaseException | None = None
        self.hang = False
        self.gate: asyncio.Event | None = None
        self.arrived: asyncio.Queue[str] = asyncio.Queue()  # the subject of each lookup, as it starts

    async def __call__(self, principal: Principal) -> Tenant:
        self.calls[principal.subject] += 1
        self.arrived.put_nowait(principal.subject)
        if self.gate is not None:
            await self.gate.wait()
        if self.hang:
            await asyncio.Event().wait()
        if self.failure is not None:
            raise self.failure
        return Tenant(
            id=f"acme-{principal.subject}",
            name=f"Acme ({principal.subject})",
            plan="team",
            note_limit=self.note_limit,
        )


async def tool(mcp: Mcp, token: str, name: str, **arguments: object) -> dict[str, object]:
    result: dict[str, object] = await mcp.call_tool(name, token, **arguments)
    return result


async def test_notes_say_which_tenant_they_are_under_with_its_limit(rs: Rs, mcp: Mcp) -> None:
    user = rs.fresh_user()
    listed = (await tool(mcp, await rs.token(user), "notes_list"))["structuredContent"]
    assert listed["tenant"] == f"personal:{user}"  # the reference lookup: everyone their own tenant
    assert listed["limit"] == 500


@pytest.mark.parametrize("kind", TOKEN_KINDS)
async def test_a_forks_lookup_decides_the_note_limit(start_rs: StartRs, kind: str) -> None:
    rs = await start_rs(kind, tenant_lookup=CountingLookup(note_limit=1))
    mcp = Mcp(rs.http, MODERN)
    token = await rs.token("alice", ["notes:write"])
    assert not (await tool(mcp, token, "notes_add", text="the one note the plan allows"))["isError"]
    refused = await tool(mcp, token, "notes_add", text="one too many")
    assert refused["isError"]
    assert "1 notes, your plan's limit" in str(refused["content"])
    listed = (await tool(mcp, token, "notes_list"))["structuredContent"]
    assert listed["tenant"] == "acme-alice"
    assert listed["limit"] == 1
    assert [note["text"] for note in listed["notes"]] == ["the one note the plan allows"]


@pytest.mark.parametrize("kind", TOKEN_KINDS)
@pytest.mark.parametrize(
    ("failure", "retry_after"),
    [
        pytest.param(ConnectionRefusedError("customer database down"), 2, id="raises"),
        pytest.param(TenantUnavailable("maintenance", retry_after=7), 7, id="unavailable"),
        pytest.param(None, 2, id="hangs"),
    ],
)
async def test_a_failing_lookup_answers_503_with_retry_after_and_never_500(
    start_rs: StartRs, kind: str, failure: BaseException | None, retry_after: int
) -> None:
    lookup = CountingLookup()
    lookup.failure, lookup.hang = failure, failure is None
    rs = await start_rs(kind, tenant_lookup=lookup, tenant_lookup_timeout=0.3)
    token = await rs.token("alice", ["notes:write"])
    for revision in (MODERN, "2025-11-25"):
        mcp = Mcp(rs.http, revision)
        if revision == MODERN:
            response = await mcp.post(
                "tools/call", {"name": "notes_add", "arguments": {"text": "lost"}}, token
            )
        else:  # even the 2025 handshake needs the tenant
            response = await rs.http.post(
                "/mcp",
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": revision,
                        "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"},
                    },
                },
                headers={"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream"},
            )
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == str(retry_after)
        assert response.json() == {
            "error": "temporarily_unavailable",
            "error_description": UNAVAILABLE_DESCRIPTION,
        }
        assert "Traceback" not in response.text
        assert "customer database" not in response.text

    # Not cached: once the lookup works again, so does the next request; the failed call never ran.
    lookup.failure, lookup.hang = None, False
    listed = (await tool(Mcp(rs.http, MODERN), token, "notes_list"))["structuredContent"]
    assert listed["notes"] == []
    assert lookup.calls["alice"] == 3


@pytest.mark.parametrize("kind", FORGEABLE_KINDS)
async def test_the_cache_keeps_records_as_the_settings_say(start_rs: StartRs, kind: str) -> None:
    lookup = CountingLookup()
    rs = await start_rs(kind, tenant_lookup=lookup, tenant_cache_size=2)
    mcp = Mcp(rs.http, MODERN)
    tokens = {user: await rs.token(user) for user in ("alice", "bob", "carol")}
    for user in ("alice", "alice", "bob", "alice", "carol", "alice", "bob"):
        await tool(mcp, tokens[user], "whoami")
    # alice stays (recently used), bob is dropped when carol arrives and looked up again.
    assert lookup.calls == {"alice": 1, "bob": 2, "carol": 1}

    uncached = CountingLookup()
    rs = await start_rs(kind, tenant_lookup=uncached, tenant_cache_ttl=0)
    token = await rs.token("alice")
    for _ in range(3):
        await tool(Mcp(rs.http, MODERN), token, "whoami")
    assert uncached.calls["alice"] == 3


@pytest.mark.parametrize("kind", FORGEABLE_KINDS)
async def test_concurrent_requests_of_one_principal_share_one_lookup(start_rs: StartRs, kind: str) -> None:
    lookup = CountingLookup()
    lookup.gate = asyncio.Event()
    rs = await start_rs(kind, tenant_lookup=lookup)
    mcp = Mcp(rs.http, MODERN)
    token, other = await rs.token("alice"), await rs.token("bob")
    calls = [
        asyncio.ensure_future(mcp.post("tools/call", {"name": "whoami", "arguments": {}}, token))
        for _ in range(12)
    ]
    calls.append(asyncio.ensure_future(mcp.post("tools/call", {"name": "whoami", "arguments": {}}, other)))
    started = {await asyncio.wait_for(lookup.arrived.get(), 10) for _ in range(2)}
    assert started == {"alice", "bob"}  # both principals' lookups are running, and held
    lookup.gate.set()
    responses = await asyncio.gather(*calls)
    assert [response.status_code for response in responses] == [200] * 13
    assert lookup.calls == {"alice": 1, "bob": 1}


async def test_a_revocation_at_our_own_authorization_server_drops_the_record(start_rs: StartRs) -> None:
    lookup = CountingLookup()
    rs = await start_rs("internal", tenant_lookup=lookup)
    mcp = Mcp(rs.http, MODERN)
    grant = await asyncio.to_thread(
        mint, rs.mcp_url, scope="mcp:tools:read", user=("alice", USER_PASSWORD), redirect_uri=CALLBACK
    )
    await tool(mcp, grant.tokens.access_token, "whoami")
    await tool(mcp, grant.tokens.access_token, "whoami")
    assert lookup.calls["alice"] == 1

    await asyncio.to_thread(revoke, grant.discovery, grant.client.client_id, grant.tokens.access_token)
    refused = await mcp.post("tools/call", {"name": "whoami", "arguments": {}}, grant.tokens.access_token)
    assert refused.status_code == 401, "validation comes first: the cache never outlives a token"
    again = await asyncio.to_thread(
        mint, rs.mcp_url, scope="mcp:tools:read", user=("alice", USER_PASSWORD), redirect_uri=CALLBACK
    )
    await tool(mcp, again.tokens.access_token, "whoami")
    assert lookup.calls["alice"] == 2, "the record was dropped at the revocation, and looked up afresh"


async def test_a_revocation_seen_through_introspection_drops_the_record(start_rs: StartRs) -> None:
    lookup = CountingLookup()
    rs = await start_rs("introspection", tenant_lookup=lookup, introspection_cache_ttl=1)
    mcp = Mcp(rs.http, MODERN)
    revoked, later = await rs.token("alice"), await rs.token("alice")
    await tool(mcp, revoked, "whoami")
    assert lookup.calls["alice"] == 1
    rs.authority.revoke(revoked)
    deadline = time.monotonic() + 10
    while (await mcp.post("tools/call", {"name": "whoami", "arguments": {}}, revoked)).status_code != 401:
        assert time.monotonic() < deadline, "the revoked token kept working past INTROSPECTION_CACHE_TTL"
        await asyncio.sleep(0.1)
    await tool(mcp, later, "whoami")
    assert lookup.calls["alice"] == 2


async def test_the_lookups_cost_is_in_the_metrics(start_rs: StartRs) -> None:
    lookup = CountingLookup()
    rs = await start_rs("jwt", tenant_lookup=lookup)
    mcp = Mcp(rs.http, MODERN)
    token = await rs.token("alice")
    for _ in range(3):
        await tool(mcp, token, "whoami")
    text = (await rs.http.get("/metrics")).text
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("mcpref_tenant")
    }
    assert samples['mcpref_tenant_lookup_duration_seconds_count{outcome="ok"}'] >= 1
    assert samples["mcpref_tenant_cache_hits_total"] >= 2
    assert samples["mcpref_tenant_cache_misses_total"] >= 1
    assert "mcpref_tenant_cache_entries" in samples
    assert "mcpref_tenant_cache_invalidations_total" in samples
