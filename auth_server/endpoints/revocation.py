"""Token revocation (RFC 7009).

Access and refresh tokens, either hint, any order. Revoking a refresh token ends its whole grant
(every access token minted from it too, RFC 7009 section 2.1's SHOULD); revoking an access token
ends just that token.

Only the client a token was issued to may revoke it (RFC 7009 section 2.1). Another client's
attempt changes nothing and is audited (`revoke_refused`), but it is answered exactly as an
unknown token is, 200 with no body: a distinct answer (this endpoint used to say 400
`unauthorized_client`) told any client holding a token string whether it was live, and whose it
was not, without using it. RFC 7009 section 2.2 answers invalid tokens 200, and for this client
the token is invalid. Unknown, expired, already revoked and malformed tokens get the same 200.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from auth_server.audit import fingerprint
from auth_server.endpoints.forms import Endpoint, oauth_endpoint, read_form
from auth_server.errors import NO_STORE
from auth_server.rate_limit import client_ip
from auth_server.services import BackChannel
from auth_server.tokens import RefreshTokenRecord


def revocation_endpoint(channel: BackChannel) -> Endpoint:
    @oauth_endpoint
    async def revoke(request: Request) -> Response:
        ip = client_ip(request)
        await channel.limiter.check_ip("revoke", ip)
        form = await read_form(request)
        caller = await channel.clients.authenticate(request.headers, form)
        token = form.require("token")
        found = await channel.tokens.find_any(token, form.get("token_type_hint"))
        if found is not None:
            record = found.record
            if record.client_id != caller.client_id:
                channel.audit.record(
                    "revoke_refused",
                    ip=ip,
                    client_id=caller.client_id,
                    token_type=found.kind,
                    token_fp=fingerprint(token),
                    reason="the token was issued to another client",
                )
                return Response(status_code=200, headers=NO_STORE)  # as for an unknown token
            if isinstance(record, RefreshTokenRecord):
                await channel.grants.revoke(record.grant_id)
            else:
                await channel.store.delete(found.store_key)
            channel.audit.record(
                "revoked",
                ip=ip,
                client_id=caller.client_id,
                subject=record.sub,
                grant_id=record.grant_id,
                token_type=found.kind,
                token_fp=fingerprint(token),
            )
        return Response(status_code=200, headers=NO_STORE)

    return revoke
