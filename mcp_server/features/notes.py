"""Per-user notes: the demo of scopes per tool and data isolation per principal.

Each user's notes are one hash in the Store, `notes:{sha256(subject)}` (the subject is hashed so
keys do not expose user names), field = note id, value = JSON. The owner is always the
authenticated subject taken from the request, never an argument, so user A cannot even name
user B's notebook. Subjects come from one namespace: the authorization server's users and the
subjects configured for static API keys (an API key configured "for alice" is alice). Without
authentication (AUTH_MODE=none, stdio) everyone is "anonymous" and shares one notebook.

Reading needs `notes:read`; adding and deleting need `notes:write` (which implies `notes:read`,
so a writer can also list).

When the Store cannot be reached (Redis down), the tools answer a tool error that says so and
invites a retry, rather than the SDK's opaque "Error executing tool" and a logged traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server.protection.principal import ANONYMOUS, current_principal
from mcp_server.protection.scopes import requires_scopes
from shared.scopes import NOTES_READ, NOTES_WRITE
from shared.storage import Store
from shared.storage.base import StorageUnavailable

MAX_NOTE_LENGTH = 4000
MAX_NOTES_PER_USER = 500
STORAGE_UNAVAILABLE = "Notes are temporarily unavailable (the server cannot reach its storage); retry shortly"

LISTS = ToolAnnotations(
    title="List my notes",
    read_only_hint=True,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=False,
)
ADDS = ToolAnnotations(
    title="Add a note",
    read_only_hint=False,
    destructive_hint=False,
    idempotent_hint=False,
    open_world_hint=False,
)
DELETES = ToolAnnotations(
    title="Delete a note",
    read_only_hint=False,
    destructive_hint=True,
    idempotent_hint=True,
    open_world_hint=False,
)


class Note(BaseModel):
    id: str
    text: str
    created_at: int = Field(description="Unix time the note was added")


class NoteList(BaseModel):
    owner: str = Field(description="The subject whose notes these are")
    notes: list[Note]


class Deleted(BaseModel):
    id: str
    deleted: bool = Field(description="False when you had no note with this id")


def notebook_key(subject: str) -> str:
    return "notes:" + hashlib.sha256(subject.encode()).hexdigest()


def _owner(ctx: Context[Any, Any]) -> str:
    principal = current_principal(ctx)
    return principal.subject if principal is not None else ANONYMOUS


@contextlib.contextmanager
def _store_reachable() -> Iterator[None]:
    try:
        yield
    except StorageUnavailable:
        raise ToolError(STORAGE_UNAVAILABLE) from None


def register(server: MCPServer, store: Store) -> None:
    @server.tool(annotations=LISTS)
    @requires_scopes(NOTES_READ)
    async def notes_list(ctx: Context[Any, Any]) -> NoteList:
        """List your own notes, oldest first."""
        owner = _owner(ctx)
        with _store_reachable():
            raw = await store.hgetall(notebook_key(owner))
        notes = sorted(
            (Note.model_validate_json(value) for value in raw.values()), key=lambda n: n.created_at
        )
        return NoteList(owner=owner, notes=notes)

    @server.tool(annotations=ADDS)
    @requires_scopes(NOTES_WRITE)
    async def notes_add(text: str, ctx: Context[Any, Any]) -> Note:
        """Add a note to your own notes."""
        text = text.strip()
        if not text:
            raise ValueError("A note needs some text")
        if len(text) > MAX_NOTE_LENGTH:
            raise ValueError(f"A note is at most {MAX_NOTE_LENGTH} characters")
        key = notebook_key(_owner(ctx))
        with _store_reachable():
            if len(await store.hgetall(key)) >= MAX_NOTES_PER_USER:
                raise ValueError(f"You already have {MAX_NOTES_PER_USER} notes; delete some first")
            note = Note(id=secrets.token_hex(8), text=text, created_at=int(time.time()))
            await store.hset(key, note.id, json.dumps(note.model_dump()))
        return note

    @server.tool(annotations=DELETES)
    @requires_scopes(NOTES_WRITE)
    async def notes_delete(note_id: str, ctx: Context[Any, Any]) -> Deleted:
        """Delete one of your own notes by id."""
        with _store_reachable():
            return Deleted(id=note_id, deleted=await store.hdel(notebook_key(_owner(ctx)), note_id))
