"""`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with an ID-JAG (SEP-990).

Enterprise-managed authorization: a client the enterprise's identity provider lets act for a
signed-in user presents the provider's Identity Assertion JWT Authorization Grant and gets an
access token for that user, with no sign-in or consent page here: the provider's policy is the
consent (draft-ietf-oauth-identity-assertion-authz-grant section 4.4, the MCP profile section 5).

Who may: a client that authenticates (a configured confidential client, or a client ID metadata
document client with `private_key_jwt`) and lists this grant type; public clients may not (the
draft's section 9.1: an ID-JAG in a public client's hands is a bearer grant for anyone who saw
it). The assertion (`enterprise_idps.py` checks the provider, signature and claims) must then:

* name this client in `client_id` (the draft: "the same client as the client authentication");
* name, in `resource` if it has one, the resource the token is for: one this server protects,
  and the request's `resource` when the request has one (`invalid_target` otherwise); the token
  is audience-restricted to it (profile 5.1);
* not have been used before (`jti`, single use per provider until its `exp`; profile 7.4.2).

Scopes (profile 7.2.1): what is asked (`scope`; none asked: what the assertion allows), within
what the assertion allows (its `scope`; none named: the baseline a client gets when it asks for
nothing) and within what the client may have (its configured `scope`). The token carries the
intersection, so the answer's `scope` may be narrower than the request; nothing left is
`invalid_scope`.

The subject is the provider's `sub` namespaced by its issuer, `<issuer>#<sub>`, as federated login
forms it (`upstream.federated_subject`): the same person signing in through the same provider
either way is one user here, and no provider's user can be a local one or another provider's.
The token starts a grant of its own (so the user sees the app on the account page and can end it,
and an administrator can revoke it) with no refresh token: a new ID-JAG is the way to a new token.
"""

from __future__ import annotations

import secrets

from auth_server.clients.assertions import single_use
from auth_server.clients.authentication import AuthenticatedClient
from auth_server.enterprise_idps import EnterpriseIdps, IdJag, IdJagRejected
from auth_server.errors import OAuthError
from auth_server.grants.context import GrantContext, granted_within, invalid_grant
from auth_server.grants.grant import GrantRecord
from auth_server.params import Form
from auth_server.tokens import IssuedTokens
from auth_server.upstream import federated_subject
from shared import scopes as scope_model
from shared.oauth import JWT_BEARER_GRANT
from shared.validation import ValidatorUnavailable


class JwtBearerGrant:
    """The grant handler, holding the trusted providers."""

    def __init__(self, providers: EnterpriseIdps) -> None:
        self._providers = providers

    async def exchange(
        self, ctx: GrantContext, caller: AuthenticatedClient, form: Form, ip: str
    ) -> IssuedTokens:
        if not caller.proved_identity:
            raise OAuthError(
                "unauthorized_client", "an ID-JAG is accepted only from a client that authenticates"
            )
        assertion = form.require("assertion")
        try:
            jag = await self._providers.verify(assertion)
        except IdJagRejected as exc:
            raise invalid_grant(str(exc)) from None
        except ValidatorUnavailable as exc:
            raise OAuthError(
                "temporarily_unavailable",
                "the identity provider's keys cannot be fetched right now, retry shortly",
                status_code=503,
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        if jag.client_id != caller.client_id:
            raise invalid_grant("the ID-JAG was issued for another client (client_id)")
        resource = _resource(ctx, jag, form.get("resource"))
        scopes = _granted_scopes(form.get("scope"), jag, caller)
        now = ctx.clock()
        if not await single_use(
            ctx.store, f"id-jag:{jag.issuer}", jag.jti, expires_at=jag.expires_at, now=now
        ):
            raise invalid_grant("the ID-JAG was used before (jti)")
        grant = GrantRecord(
            grant_id=secrets.token_urlsafe(16),
            client_id=caller.client_id,
            subject=federated_subject(jag.issuer, jag.subject),
            scope=" ".join(scopes),
            resource=resource,
            created_at=int(now),
            authorized_at=int(now),
        )
        return await ctx.issue_in_grant(
            grant,
            scopes=scopes,
            refresh_scopes=None,
            ttl=ctx.settings.access_token_ttl,
            grant_type=JWT_BEARER_GRANT,
            ip=ip,
            revoked_meanwhile="the grant was revoked while this request was in flight",
            note=f"ID-JAG from {jag.issuer[:200]}",
        )


def _resource(ctx: GrantContext, jag: IdJag, requested: str | None) -> str:
    """The resource the token is for: the request's, which the assertion (if it names any) must
    name too; else the one the assertion names that we serve; else the default."""
    served = ctx.resources
    if jag.resources and not any(resource in served for resource in jag.resources):
        raise invalid_grant("the ID-JAG's resource is not a resource this authorization server protects")
    if requested is not None:
        if requested not in served:
            raise OAuthError("invalid_target", "no tokens are issued for that resource")
        if jag.resources and requested not in jag.resources:
            raise OAuthError("invalid_target", "the ID-JAG does not name the requested resource")
        return requested
    return next((resource for resource in jag.resources if resource in served), served[0])


def _granted_scopes(requested: str | None, jag: IdJag, caller: AuthenticatedClient) -> tuple[str, ...]:
    catalogue = scope_model.CATALOGUE
    allowed = jag.scopes if jag.scopes is not None else catalogue.baseline
    client_scope = scope_model.parse(caller.client.scope) or catalogue.names
    return granted_within(requested, allowed, client_scope)
