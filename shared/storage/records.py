"""Every record the two servers keep in the Store: the key layout in one file, and how a record is
read back.

Keys. Each family of records has one builder below; nothing else spells a key. docs/oauth.md
("Storage: the Redis key layout") lists the same families with their types and lifetimes; keep
the two in step. A credential, a session id or a URL never appears in a key in clear, only as
its hex SHA-256 `digest`. Ids we made ourselves (grant and task ids) are wrapped in a Redis
Cluster hash tag (`same_slot`) so the keys that must change together live in one slot.

Records. A record is a pydantic model stored as JSON. `read`, `take` and `parse` turn what the
Store holds back into that model, with one policy for a value that does not parse (written by
another version, by hand, or corrupted): it is logged, with the key's family only, and treated
as absent. Absent is what every caller already handles (unknown code, inactive token, no
session), so a bad record costs its owner a sign-in or a new token, never a 500, and other
records are never touched because of it.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.storage.base import Store, same_slot

logger = logging.getLogger(__name__)

Record = TypeVar("Record", bound=BaseModel)


def digest(value: str) -> str:
    """The storage form of a credential or identifier (hex SHA-256): unguessable inputs need no
    salt or KDF, and a leaked Store holds nothing usable."""
    return hashlib.sha256(value.encode()).hexdigest()


# --- the authorization server: clients --------------------------------------------------------
CLIENTS_KEY = "auth:clients"  # every client_id administrators list (an expiring index)
# The registrations no user has authorized yet (an expiring index with a count limit).
UNUSED_CLIENTS_KEY = "auth:clients-unused"
JWKS_KEY = "auth:jwks"  # generated signing keys (private) with their rotation dates


def client_key(client_id: str) -> str:
    """A dynamically registered client (its secret as a digest)."""
    return f"auth:client:{client_id}"


def disabled_client_key(client_id: str) -> str:
    return f"auth:client-disabled:{digest(client_id)}"


def metadata_document_key(url: str) -> str:
    """A fetched client ID metadata document, as the Client it describes."""
    return f"auth:cimd:{digest(url)}"


def metadata_document_failure_key(url: str) -> str:
    return f"auth:cimd-failed:{digest(url)}"


def assertion_jti_key(issuer: str, jti: str) -> str:
    """A used signed assertion (a client's private_key_jwt, an ID-JAG), per who minted it: single use."""
    return f"auth:assertion-jti:{digest(issuer)}:{digest(jti)}"


def machine_tokens_key(client_id: str) -> str:
    """The Store keys of a machine client's live client_credentials tokens."""
    return f"auth:client-tokens:{digest(client_id)}"


# --- the authorization server: browsers, authorization requests, consent ----------------------
def session_key(session_id: str) -> str:
    return f"auth:session:{digest(session_id)}"


def pending_key(request_id: str) -> str:
    """An /authorize request waiting for login and consent."""
    return f"auth:pending:{digest(request_id)}"


def open_requests_key(binding: str) -> str:
    """One browser session's open authorization requests (a hash: request digest -> expiry)."""
    return f"auth:pending-open:{digest(binding)}"


def consent_key(subject: str, client_id: str) -> str:
    return f"auth:consent:{subject}:{digest(client_id)}"


def upstream_state_key(state: str) -> str:
    """A federated login in flight (the state sent to the upstream provider)."""
    return f"auth:upstream:{digest(state)}"


def profile_key(subject: str) -> str:
    """A federated user's email and name from the upstream provider."""
    return f"auth:profile:{digest(subject)}"


# --- the authorization server: codes, grants and tokens ---------------------------------------
def code_key(code: str) -> str:
    return f"auth:code:{digest(code)}"


def redeemed_code_key(code: str) -> str:
    """Replay memory of a redeemed code: client, challenge, grant id."""
    return f"auth:code-redeemed:{digest(code)}"


def grant_key(grant_id: str) -> str:
    return "auth:grant:" + same_slot(grant_id)


def grant_members_key(grant_id: str) -> str:
    """The Store keys of every token in the grant (a set, in the grant's slot)."""
    return f"{grant_key(grant_id)}:tokens"


def grant_tombstone_key(grant_id: str) -> str:
    """Written before a grant ends, so a request in flight cannot add a token to it."""
    return "auth:grant-revoked:" + same_slot(grant_id)


def apps_key(subject: str) -> str:
    """The client_ids a user authorized (an expiring index)."""
    return f"auth:apps:{digest(subject)}"


def app_grants_key(subject: str, client_id: str) -> str:
    """The grant ids of one user and one app (an expiring index)."""
    return f"auth:app-grants:{digest(subject)}:{digest(client_id)}"


def app_users_key(client_id: str) -> str:
    """The subjects an app holds a grant or consent of (an expiring index)."""
    return f"auth:app-users:{digest(client_id)}"


def app_revoked_key(subject: str, client_id: str) -> str:
    """When the user revoked the app: codes approved before it are refused."""
    return f"auth:app-revoked:{digest(subject)}:{digest(client_id)}"


def access_key(token: str) -> str:
    """An opaque access token's record."""
    return f"auth:access:{digest(token)}"


def jti_key(jti: str) -> str:
    """A JWT access token's record (the jti is a random id, not a credential)."""
    return f"auth:jti:{jti}"


def refresh_key(token: str) -> str:
    return f"auth:refresh:{digest(token)}"


def rotated_refresh_key(token: str) -> str:
    """Reuse memory of a refresh token a rotation consumed."""
    return f"auth:refresh-rotated:{digest(token)}"


def refresh_retry_key(token: str) -> str:
    """What a retry within REFRESH_TOKEN_GRACE_PERIOD needs to get the same tokens again."""
    return f"auth:refresh-retry:{digest(token)}"


def rate_limit_key(bucket: str, who: str) -> str:
    """A fixed-window request counter."""
    return f"auth:ratelimit:{bucket}:{who}"


# --- the MCP server ----------------------------------------------------------------------------
def notebook_key(subject: str) -> str:
    """One user's notes (a hash: note id -> JSON)."""
    return f"notes:{digest(subject)}"


def task_key(task_id: str) -> str:
    """A task's owner, progress, lease and pending answers (a hash)."""
    return "mcp:task:" + same_slot(task_id)


def task_outcome_key(task_id: str) -> str:
    return f"{task_key(task_id)}:outcome"


def task_owner_key(owner_digest: str) -> str:
    """A caller's live tasks (an expiring index)."""
    return f"mcp:tasks-of:{owner_digest}"


# --- DPoP (RFC 9449): both servers -------------------------------------------------------------
# The secret server nonces are MACed with (shared/dpop/nonces.py), the same at every instance.
DPOP_NONCE_SECRET_KEY = "dpop:nonce-secret"  # noqa: S105 - the Store key that holds it, not a secret


def dpop_proof_key(proof_digest: str) -> str:
    """A DPoP proof already used (the digest of its key's thumbprint and its `jti`): single use on
    every instance (shared/dpop/replay.py)."""
    return f"dpop:jti:{proof_digest}"


# --- reading and writing records ---------------------------------------------------------------
def family(key: str) -> str:
    """What a log line may say about a key: its family (`auth:session`), never the id in it."""
    head, _, rest = key.partition(":")
    return f"{head}:{rest.partition(':')[0]}" if rest else head


def parse(model: type[Record], raw: str | None, key: str) -> Record | None:
    """The record `raw` (read from `key`) holds, or None when absent or unreadable (logged)."""
    if raw is None:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        logger.warning("unreadable %s record under %s: treated as absent", model.__name__, family(key))
        return None


async def read(store: Store, key: str, model: type[Record]) -> Record | None:
    return parse(model, await store.get(key), key)


async def take(store: Store, key: str, model: type[Record]) -> Record | None:
    """Read and delete at once (single use); an unreadable record is consumed and absent."""
    return parse(model, await store.take(key), key)


async def write(
    store: Store, key: str, record: BaseModel, *, ttl: float | None = None, only_if_absent: bool = False
) -> bool:
    """Store `record` as JSON; False only when `only_if_absent` found the key taken."""
    return await store.set(key, record.model_dump_json(), ttl=ttl, only_if_absent=only_if_absent)


async def count(store: Store, key: str, window: float) -> int:
    """One more in the fixed-window counter `key`; a value that is not a counter is logged and
    the count starts again."""
    try:
        return await store.incr(key, window)
    except ValueError:
        logger.warning("unreadable counter under %s: started again", family(key))
        await store.delete(key)
        return await store.incr(key, window)
