"""Per-user notes: the demo of scopes per tool and data isolation per principal.

Each user's notes are one hash in the Store, `notes:{sha256(subject)}` (the subject is hashed so
keys do not expose user names), field = note id, value = JSON. The owner is always the
authenticated subject taken from the request, never an argument, so user A cannot even name
user B's notebook. Subjects come from one namespace: the authorization server's users and the
subjects configured for static API keys (an API key configured "for alice" is alice). Without
authentication (AUTH_MODE=none, stdio) everyone is "anonymous" and shares one notebook.

Reading needs `notes:read`; adding and deleting need `notes:write` (which implies `notes:read`,
so a writer can also list).

How many notes a user may keep is the customer's business, not the tool's: `notes_add` reads the
limit from the caller's tenant record (`caller_tenant`, `mcp_server/tenants.py`), and `notes_list`
says which tenant the notebook is under.

When the Store cannot be reached (Redis down), the tools answer a tool error that says so and
invites a retry (`storage_errors_as_tool_errors`).
"""

from __future__ import annotations

import json
import secrets
import time

from pydantic import BaseModel, Field

from mcp_server.features.kit import (
    DELETES,
    READ_ONLY,
    WRITES,
    ToolContext,
    ToolError,
    Tools,
    caller_subject,
    caller_tenant,
    storage_errors_as_tool_errors,
)
from shared.scopes import NOTES_READ, NOTES_WRITE
from shared.storage import Store, records
from shared.storage.records import notebook_key

MAX_NOTE_LENGTH = 4000


class Note(BaseModel):
    id: str
    text: str
    created_at: int = Field(description="Unix time the note was added")


class NoteList(BaseModel):
    owner: str = Field(description="The subject whose notes these are")
    tenant: str = Field(description="The customer account the owner belongs to")
    limit: int = Field(description="How many notes the owner may keep (the tenant's plan)")
    notes: list[Note]


class Deleted(BaseModel):
    id: str
    deleted: bool = Field(description="False when you had no note with this id")


async def add_note(store: Store, owner: str, text: str, *, limit: int) -> Note:
    """Add a note to `owner`'s notes (bounded in length, and in count by `limit`, the caller's
    plan's), or raise a ToolError saying why not."""
    text = text.strip()
    if not text:
        raise ToolError("A note needs some text")
    if len(text) > MAX_NOTE_LENGTH:
        raise ToolError(f"A note is at most {MAX_NOTE_LENGTH} characters")
    key = notebook_key(owner)
    with storage_errors_as_tool_errors():
        if len(await store.hgetall(key)) >= limit:
            raise ToolError(f"You already have {limit} notes, your plan's limit; delete some first")
        note = Note(id=secrets.token_hex(8), text=text, created_at=int(time.time()))
        await store.hset(key, note.id, json.dumps(note.model_dump()))
    return note


def register(tools: Tools, store: Store) -> None:
    @tools.add(scopes=[NOTES_READ], annotations=READ_ONLY, title="List my notes", quiet=True)
    async def notes_list(ctx: ToolContext) -> NoteList:
        """List your own notes, oldest first."""
        owner = caller_subject(ctx)
        with storage_errors_as_tool_errors():
            key = notebook_key(owner)
            raw = await store.hgetall(key)
        readable = (records.parse(Note, value, key) for value in raw.values())
        notes = sorted((note for note in readable if note is not None), key=lambda n: n.created_at)
        tenant = caller_tenant(ctx)
        return NoteList(owner=owner, tenant=tenant.id, limit=tenant.note_limit, notes=notes)

    @tools.add(scopes=[NOTES_WRITE], annotations=WRITES, title="Add a note", quiet=True)
    async def notes_add(text: str, ctx: ToolContext) -> Note:
        """Add a note to your own notes."""
        return await add_note(store, caller_subject(ctx), text, limit=caller_tenant(ctx).note_limit)

    @tools.add(scopes=[NOTES_WRITE], annotations=DELETES, title="Delete a note", quiet=True)
    async def notes_delete(note_id: str, ctx: ToolContext) -> Deleted:
        """Delete one of your own notes by id."""
        with storage_errors_as_tool_errors():
            return Deleted(id=note_id, deleted=await store.hdel(notebook_key(caller_subject(ctx)), note_id))
