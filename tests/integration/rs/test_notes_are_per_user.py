"""Per-user notes and whoami: the principal reaches the tool, and users never see each other's data."""

from __future__ import annotations

import uuid

from shared.scopes import NOTES_READ, NOTES_WRITE, TOOLS_READ
from tests.fixtures.redis_server import redis_server, redis_url  # noqa: F401  (fixtures)
from tests.integration.rs.conftest import API_KEYS, LEGACY, Mcp, Rs, StartRs, message

WRITER = [TOOLS_READ, NOTES_WRITE]


async def test_a_user_never_sees_another_users_notes(rs: Rs, mcp: Mcp) -> None:
    user_a, user_b = rs.fresh_user(), rs.fresh_user()  # with empty notebooks on the shared server
    alice, bob = await rs.token(user_a, WRITER), await rs.token(user_b, WRITER)
    added = (await mcp.call_tool("notes_add", alice, text="alice's secret"))["structuredContent"]
    await mcp.call_tool("notes_add", bob, text="bob's note")

    mine = (await mcp.call_tool("notes_list", alice))["structuredContent"]
    assert mine["owner"] == user_a
    assert [note["text"] for note in mine["notes"]] == ["alice's secret"]
    theirs = (await mcp.call_tool("notes_list", bob))["structuredContent"]
    assert [note["text"] for note in theirs["notes"]] == ["bob's note"]

    # bob knows the id of alice's note and still cannot delete it
    attempt = (await mcp.call_tool("notes_delete", bob, note_id=added["id"]))["structuredContent"]
    assert attempt == {"id": added["id"], "deleted": False}
    assert len((await mcp.call_tool("notes_list", alice))["structuredContent"]["notes"]) == 1

    gone = (await mcp.call_tool("notes_delete", alice, note_id=added["id"]))["structuredContent"]
    assert gone["deleted"] is True
    assert (await mcp.call_tool("notes_list", alice))["structuredContent"]["notes"] == []


async def test_notes_follow_the_user_across_clients_and_revisions(rs: Rs) -> None:
    # internal mode: each real flow registers a client of its own
    desktop = {} if rs.token_kind == "internal" else {"client_id": "desktop-app"}
    web = {} if rs.token_kind == "internal" else {"client_id": "web-app"}
    carol = rs.fresh_user()
    first = await rs.token(carol, WRITER, **desktop)
    await Mcp(rs.http, LEGACY).call_tool("notes_add", first, text="from the desktop")
    second = await rs.token(carol, [TOOLS_READ, NOTES_READ], **web)
    listed = await Mcp(rs.http, "2026-07-28").call_tool("notes_list", second)
    assert [note["text"] for note in listed["structuredContent"]["notes"]] == ["from the desktop"]


async def test_bad_note_input_is_a_tool_error_not_a_server_error(rs: Rs, mcp: Mcp) -> None:
    token = await rs.token("alice", WRITER)
    empty = await mcp.call_tool("notes_add", token, text="   ")
    assert empty["isError"] is True
    assert "needs some text" in empty["content"][0]["text"]  # the reason, not "Error executing tool"
    too_long = await mcp.call_tool("notes_add", token, text="x" * 5000)
    assert too_long["isError"] is True
    assert "at most 4000 characters" in too_long["content"][0]["text"]


async def test_whoami_reports_the_principal_from_the_token(rs: Rs, mcp: Mcp) -> None:
    token = await rs.token("alice", [TOOLS_READ, NOTES_READ])
    me = (await mcp.call_tool("whoami", token))["structuredContent"]
    assert me["authenticated"] is True
    assert me["subject"] == "alice"
    assert me["client_id"]
    assert me["scopes"] == sorted([TOOLS_READ, NOTES_READ])
    assert me["audience"] == [rs.mcp_url]
    assert me["issuer"] == rs.settings.issuer
    assert isinstance(me["expires_at"], int)
    key = (await mcp.call_tool("whoami", API_KEYS["bob"]))["structuredContent"]
    assert key["subject"] == "api-key:bob"  # never the user bob (docs/security.md)
    assert key["client_id"] == "api-key:bob"


async def test_without_authentication_the_caller_is_anonymous(start_rs: StartRs) -> None:
    rs = await start_rs("jwt", auth_mode="none")
    mcp = Mcp(rs.http, "2026-07-28")
    response = await mcp.post("tools/call", {"name": "whoami", "arguments": {}}, None)
    assert response.status_code == 200
    me = message(response)["result"]["structuredContent"]
    assert me == {
        "authenticated": False,
        "subject": "anonymous",
        "client_id": None,
        "scopes": [],
        "audience": [],
        "issuer": None,
        "expires_at": None,
    }


async def test_the_notes_tools_describe_themselves_honestly(rs: Rs, mcp: Mcp) -> None:
    tools = {
        tool["name"]: tool
        for tool in (await mcp.result("tools/list", None, await rs.token("alice")))["tools"]
    }
    listing, adding, deleting = (
        tools[name]["annotations"] for name in ("notes_list", "notes_add", "notes_delete")
    )
    assert listing["readOnlyHint"] is True
    assert adding["readOnlyHint"] is False
    assert adding["destructiveHint"] is False
    assert adding["idempotentHint"] is False
    assert deleting["destructiveHint"] is True
    assert deleting["idempotentHint"] is True
    assert all(a["openWorldHint"] is False for a in (listing, adding, deleting))
    assert tools["whoami"]["annotations"]["readOnlyHint"] is True


async def test_notes_live_in_the_storage_backend_redis_included(start_rs: StartRs, redis_url: str) -> None:  # noqa: F811
    prefix = f"rs-test:{uuid.uuid4().hex}:"
    first = await start_rs("introspection", redis_url=redis_url, redis_key_prefix=prefix)
    token = await first.token("dana", WRITER)
    await Mcp(first.http, LEGACY).call_tool("notes_add", token, text="kept in redis")
    # a second server process on the same Redis sees the same notebook, and only dana's
    second = await start_rs("jwt", redis_url=redis_url, redis_key_prefix=prefix)
    listed = await Mcp(second.http, LEGACY).call_tool("notes_list", await second.token("dana", WRITER))
    assert [note["text"] for note in listed["structuredContent"]["notes"]] == ["kept in redis"]
    other = await Mcp(second.http, LEGACY).call_tool("notes_list", await second.token("erin", WRITER))
    assert other["structuredContent"]["notes"] == []


async def test_internal_mode_with_jwt_access_tokens_serves_the_right_user(start_rs: StartRs) -> None:
    rs = await start_rs("internal", token_format="jwt")
    token = await rs.token("alice", WRITER)
    assert token.count(".") == 2  # an RFC 9068 JWT from the real AS
    mcp = Mcp(rs.http, LEGACY)
    await mcp.call_tool("notes_add", token, text="signed")
    me = (await mcp.call_tool("whoami", token))["structuredContent"]
    assert me["subject"] == "alice"
    assert me["issuer"] == rs.settings.issuer
    listed = await mcp.call_tool("notes_list", await rs.token("bob", WRITER))
    assert listed["structuredContent"]["notes"] == []
