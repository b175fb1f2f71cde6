"""The admin API: JSON over HTTP under the issuer's path, served only when ADMIN_TOKEN_SHA256 is set.

    GET    /admin/clients                    every client: configured, registered, holding a
                                             grant or consent, disabled
    GET    /admin/clients/{client_id}        one client, its users, its grants and machine tokens
    PATCH  /admin/clients/{client_id}        {"disabled": true} ends all it holds; false enables
    DELETE /admin/clients/{client_id}        ends all it holds and forgets it (configured: 409)
    GET    /admin/grants?subject=&client_id= a user's or a client's grants (or one pair's)
    DELETE /admin/grants?subject=&client_id= revokes them, every token in them at once
    DELETE /admin/grants/{grant_id}          revokes one grant
    GET    /admin/signing-keys               the JWT signing keys published now (public facts)
    POST   /admin/signing-keys               rotates: a new key signs from now on
    POST   /admin/purge                      {"after": ..., "limit": ...}: one page of clean-up

A client_id goes in the path percent-encoded (metadata-document clients are URLs). What each
action does is `service.py`'s; this module is the door.

The door, for every path under /admin and every method, before anything else runs:
1. loopback clients only, unless ADMIN_API_REMOTE (403 otherwise; the address is the TCP peer, or
   the client a trusted proxy names);
2. an address that failed RATE_LIMIT_PER_MINUTE times in the window gets 429 before its token is
   even looked at (failed attempts count per address, across instances);
3. `Authorization: Bearer <admin token>` (`credentials.py`); nothing else is read as a credential:
   no cookie, no query or body parameter. Missing: 401 with a Bearer challenge; wrong: 401
   `invalid_token`, counted and audited (`admin_auth_failed`).
Since the credential is a header no browser attaches by itself, another site cannot make a
signed-in administrator's browser act here (no CSRF), and there is no CORS: a cross-origin script
cannot even send the header (its preflight gets a 401 without Access-Control-* headers).
Every answer is JSON with `Cache-Control: no-store`; errors are `{"error", "error_description"}`:
400 invalid_request, 401, 403 forbidden, 404 not_found, 409 conflict, 413, 429, 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from auth_server.admin.credentials import AdminCredentials
from auth_server.admin.service import AdminService, NoSuchThing, NotAllowed
from auth_server.audit import AuditLog
from auth_server.endpoints.forms import BodyTooLarge, json_response, oauth_endpoint, read_body
from auth_server.errors import OAuthError
from auth_server.rate_limit import RateLimiter, client_ip
from auth_server.urls import endpoint_path
from shared import untrusted_json
from shared.settings import Settings, is_loopback_host

MAX_BODY_BYTES = 4096
MAX_ID_LENGTH = 2000  # a client_id (a metadata document URL), a subject, a grant id
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class AdminCall:
    """Who is acting: the admin token's fingerprint and the caller's address (for the audit log)."""

    by: str
    ip: str


AdminHandler = Callable[[Request, AdminCall], Awaitable[Response]]


class ClientUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    disabled: bool


class PurgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    after: str | None = Field(None, max_length=MAX_ID_LENGTH)
    limit: int = Field(100, ge=1, le=1000)


class AdminDoor:
    """The checks every admin request passes (see the module docstring), around each handler."""

    def __init__(
        self,
        credentials: AdminCredentials,
        limiter: RateLimiter,
        audit: AuditLog,
        *,
        remote: bool,
        realm: str,
    ) -> None:
        self._credentials = credentials
        self._limiter = limiter
        self._audit = audit
        self._remote = remote
        self._challenge = f'Bearer realm="{realm}"'

    def __call__(self, handler: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
        @oauth_endpoint
        async def endpoint(request: Request) -> Response:
            ip = client_ip(request)
            if not self._remote and not is_loopback_host(ip):
                raise OAuthError(
                    "forbidden",
                    "the admin API answers loopback clients only (ADMIN_API_REMOTE)",
                    status_code=403,
                )
            await self._limiter.refuse_if_failed_too_often("admin-auth-failed", ip)
            presented = request.headers.getlist("authorization")
            if not presented:
                raise OAuthError(
                    "unauthorized",
                    "the admin API requires an admin token (Authorization: Bearer)",
                    status_code=401,
                    headers={"WWW-Authenticate": self._challenge},
                )
            by = self._credentials.verify(_bearer(presented[0])) if len(presented) == 1 else None
            if by is None:
                await self._limiter.count_failure("admin-auth-failed", ip)
                self._audit.record("admin_auth_failed", ip=ip, endpoint=request.url.path[:200])
                raise OAuthError(
                    "invalid_token",
                    "not an admin token",
                    status_code=401,
                    headers={"WWW-Authenticate": f'{self._challenge}, error="invalid_token"'},
                )
            try:
                response = await handler(request, AdminCall(by=by, ip=ip))
                if request.method == "GET":  # reads show personal data: who looked is recorded too
                    query = request.query_params
                    self._audit.record(
                        "admin_read",
                        ip=ip,
                        endpoint=request.url.path[:200],
                        subject=query.get("subject"),
                        client_id=query.get("client_id"),
                        token_fp=by,
                    )
                return response
            except NoSuchThing as exc:
                raise OAuthError("not_found", str(exc), status_code=404) from None
            except NotAllowed as exc:
                raise OAuthError("conflict", str(exc), status_code=409) from None

        endpoint.__name__ = handler.__name__
        return endpoint


def _bearer(value: str) -> str:
    """The token of `Bearer <token>` (scheme case-insensitive), or "" for anything else."""
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token and " " not in token else ""


def admin_routes(
    settings: Settings,
    service: AdminService,
    credentials: AdminCredentials,
    limiter: RateLimiter,
    audit: AuditLog,
) -> list[BaseRoute]:
    """The admin API's routes, or none at all without a configured admin token."""
    if not credentials:
        return []
    door = AdminDoor(
        credentials, limiter, audit, remote=settings.admin_api_remote, realm=f"{settings.issuer} admin"
    )
    base = endpoint_path(settings, "admin")

    async def list_clients(_: Request, __: AdminCall) -> Response:
        return _json(await service.clients())

    async def show_client(request: Request, _: AdminCall) -> Response:
        return _json(await service.client(_path_id(request, "client_id")))

    async def update_client(request: Request, call: AdminCall) -> Response:
        update = _body(ClientUpdate, await _read_json(request))
        client_id = _path_id(request, "client_id")
        return _json(await service.set_disabled(client_id, update.disabled, by=call.by, ip=call.ip))

    async def delete_client(request: Request, call: AdminCall) -> Response:
        return _json(await service.delete(_path_id(request, "client_id"), by=call.by, ip=call.ip))

    async def list_grants(request: Request, _: AdminCall) -> Response:
        subject, client_id = _selection(request)
        return _json(await service.grants(subject=subject, client_id=client_id))

    async def revoke_grants(request: Request, call: AdminCall) -> Response:
        subject, client_id = _selection(request)
        return _json(
            await service.revoke_grants(subject=subject, client_id=client_id, by=call.by, ip=call.ip)
        )

    async def revoke_grant(request: Request, call: AdminCall) -> Response:
        return _json(await service.revoke_grant(_path_id(request, "grant_id"), by=call.by, ip=call.ip))

    async def list_keys(_: Request, __: AdminCall) -> Response:
        return _json(await service.keys())

    async def rotate_key(_: Request, call: AdminCall) -> Response:
        return _json(await service.rotate_key(by=call.by, ip=call.ip))

    async def purge(request: Request, call: AdminCall) -> Response:
        raw = await _read_json(request, optional=True)
        asked = _body(PurgeRequest, raw if raw is not None else {})
        return _json(await service.purge(after=asked.after, limit=asked.limit, by=call.by, ip=call.ip))

    async def nothing_here(_: Request, __: AdminCall) -> Response:
        raise NoSuchThing("no such admin endpoint or method (docs/operations.md lists them)")

    return [
        Route(f"{base}/clients", door(list_clients), methods=["GET"]),
        Route(f"{base}/clients/{{client_id:path}}", door(show_client), methods=["GET"]),
        Route(f"{base}/clients/{{client_id:path}}", door(update_client), methods=["PATCH"]),
        Route(f"{base}/clients/{{client_id:path}}", door(delete_client), methods=["DELETE"]),
        Route(f"{base}/grants", door(list_grants), methods=["GET"]),
        Route(f"{base}/grants", door(revoke_grants), methods=["DELETE"]),
        Route(f"{base}/grants/{{grant_id}}", door(revoke_grant), methods=["DELETE"]),
        Route(f"{base}/signing-keys", door(list_keys), methods=["GET"]),
        Route(f"{base}/signing-keys", door(rotate_key), methods=["POST"]),
        Route(f"{base}/purge", door(purge), methods=["POST"]),
        # Everything else under /admin (other paths, other methods, CORS preflights) passes the
        # same door first: without a token, a 401 and nothing else, whatever was asked.
        Route(base, door(nothing_here), methods=ALL_METHODS),
        Route(f"{base}/{{rest:path}}", door(nothing_here), methods=ALL_METHODS),
    ]


def _json(model: BaseModel) -> Response:
    return json_response(model.model_dump(mode="json"))


def _path_id(request: Request, name: str) -> str:
    value = str(request.path_params[name])
    if not value or len(value) > MAX_ID_LENGTH:
        raise OAuthError("invalid_request", f"{name} must be 1 to {MAX_ID_LENGTH} characters")
    return value


def _selection(request: Request) -> tuple[str | None, str | None]:
    """`subject` and `client_id` from the query string: at least one, each at most once."""
    values: dict[str, str | None] = {}
    for name in ("subject", "client_id"):
        given = request.query_params.getlist(name)
        if len(given) > 1:
            raise OAuthError("invalid_request", f"{name} is repeated")
        value = given[0] if given else None
        if value is not None and not 0 < len(value) <= MAX_ID_LENGTH:
            raise OAuthError("invalid_request", f"{name} must be 1 to {MAX_ID_LENGTH} characters")
        values[name] = value
    if values["subject"] is None and values["client_id"] is None:
        raise OAuthError("invalid_request", "name a user (subject), a client (client_id), or both")
    return values["subject"], values["client_id"]


async def _read_json(request: Request, *, optional: bool = False) -> object:
    """The request's JSON body (bounded); None for an empty body when `optional`."""
    try:
        body = await read_body(request, MAX_BODY_BYTES)
    except BodyTooLarge:
        raise OAuthError("invalid_request", "request body too large", status_code=413) from None
    if not body and optional:
        return None
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise OAuthError("invalid_request", "the request body must be application/json")
    try:
        return untrusted_json.parse(body, max_bytes=MAX_BODY_BYTES)
    except untrusted_json.UntrustedJsonError as exc:
        raise OAuthError("invalid_request", str(exc)) from None


def _body(model: type[_M], raw: object) -> _M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise OAuthError("invalid_request", problems[:300]) from None
