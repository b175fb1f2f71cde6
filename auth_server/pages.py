"""Rendering the authorization server's HTML pages (login, consent, errors) safely.

Every page goes through `render`, so none can forget the protections a page that asks for
passwords and consent needs:
* jinja2 autoescaping of every value (reflected `state`, client names, URIs: no XSS);
* no framing (`X-Frame-Options: DENY` and CSP `frame-ancestors 'none'`: no clickjacking of the
  consent button, OAuth 2.1 section 7.10);
* a CSP that allows no script at all and only this response's inline style (by nonce);
* `Referrer-Policy: no-referrer` (authorization requests carry state and PKCE challenges in the
  URL) and `Cache-Control: no-store` (pages carry CSRF tokens and user names).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse

from auth_server.models import Client, looks_like_metadata_url
from auth_server.redirect_uris import display_host

_environment = Environment(
    loader=PackageLoader("auth_server", "templates"),
    autoescape=True,
    undefined=StrictUndefined,  # a missing value is a bug to see in tests, not an empty string
    trim_blocks=True,
    lstrip_blocks=True,
)

SECURITY_HEADERS: Mapping[str, str] = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
}


def content_security_policy(style_nonce: str) -> str:
    # No form-action: Chromium applies it to the redirect after a form POST, and the consent
    # POST must be able to 303 to the client's redirect URI.
    return (
        f"default-src 'none'; style-src 'nonce-{style_nonce}'; img-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def page_headers(style_nonce: str) -> dict[str, str]:
    return {**SECURITY_HEADERS, "Content-Security-Policy": content_security_policy(style_nonce)}


def render(
    template: str,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = _environment.get_template(template).render(style_nonce=nonce, **context)
    return HTMLResponse(html, status_code=status_code, headers={**page_headers(nonce), **(headers or {})})


def error_page(
    title: str,
    description: str,
    *,
    status_code: int = 400,
    details: Mapping[str, str] | None = None,
    continue_url: str | None = None,
    continue_host: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """An error shown to the person at the browser instead of a redirect.

    `details` are the request values a developer needs to debug (client_id, redirect_uri,
    state), shown escaped. With `continue_url`, the page offers a plain link back to the client
    (used when the client's redirect URI is not trusted enough for an automatic redirect).
    """
    return render(
        "error.html",
        status_code=status_code,
        headers=headers,
        title=title,
        description=description,
        details=dict(details or {}),
        continue_url=continue_url,
        continue_host=continue_host,
    )


@dataclass(frozen=True, slots=True)
class AppLabel:
    """How a page names the application (templates/app_label.html renders it)."""

    name: str
    verified: bool  # the operator vouches for the name (a configured client)
    document_host: str | None  # a CIMD client: the host its metadata document came from


def app_label(client: Client | None, client_id: str) -> AppLabel:
    """`client` is None when it is not known right now (the account page lists apps without
    fetching metadata documents): a URL client_id still names its document's host."""
    name = (client.client_name if client else None) or client_id
    from_document = client.source == "metadata_document" if client else looks_like_metadata_url(client_id)
    return AppLabel(
        name=name,
        verified=client is not None and client.name_is_verified,
        document_host=display_host(client_id) if from_document else None,
    )
