"""Client ID metadata documents (requirements 2.6, CM-01..CM-09), over real HTTP.

The documents are served by a real uvicorn server on 127.0.0.1 that counts every request it
gets, so "rejected without a fetch" is observed, not assumed. The AS runs with
CIMD_ALLOW_LOOPBACK (the only way a test can host documents) unless a test turns it off; every
other address, and every non-literal spelling of loopback, must still be refused.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fixtures.live_server import bound_socket, live_server
from tests.fixtures.waits import eventually
from tests.integration.auth.conftest import HttpFactory, in_every_deployment
from tests.integration.auth.flow_helpers import authorize_params, callback_dict, new_pkce, run_flow, sign_in
from tests.integration.auth.helpers import REDIRECT_URI


class DocumentServer:
    """Serves fixture documents at /{token}/{kind}.json and counts requests per path."""

    def __init__(self) -> None:
        self.base_url = ""
        self._hits: Counter[str] = Counter()
        self._lock = threading.Lock()

    def url(self, kind: str) -> str:
        """A fresh document URL of the given kind (a new token per call: no shared cache)."""
        return f"{self.base_url}/{uuid.uuid4().hex}/{kind}.json"

    def hits(self, url: str) -> int:
        with self._lock:
            return self._hits[urlsplit(url).path]

    def app(self, base_url: str) -> Starlette:
        self.base_url = base_url
        return Starlette(routes=[Route("/{token}/{kind}.json", self._serve)])

    async def _serve(self, request: Request) -> Response:
        path = request.url.path
        with self._lock:
            self._hits[path] += 1
            count = self._hits[path]
        url = f"{self.base_url}{path}"
        kind = request.path_params["kind"]
        document: dict[str, Any] = {
            "client_id": url,
            "client_name": "Fixture Client",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        cached = {"Cache-Control": "max-age=60"}
        match kind:
            case "client":
                return JSONResponse(document, headers=cached)
            case "nocache":
                return JSONResponse(document, headers={"Cache-Control": "no-store"})
            case "plain":
                return JSONResponse(document)
            case "mismatch":
                return JSONResponse({**document, "client_id": f"{self.base_url}/other/client.json"})
            case "trailing-slash":
                return JSONResponse({**document, "client_id": url + "/"})
            case "no-redirects":
                return JSONResponse({key: value for key, value in document.items() if key != "redirect_uris"})
            case "no-name":
                return JSONResponse({key: value for key, value in document.items() if key != "client_name"})
            case "bad-redirect":
                return JSONResponse({**document, "redirect_uris": ["http://evil.example/cb"]})
            case "secret-method":
                return JSONResponse({**document, "token_endpoint_auth_method": "client_secret_basic"})
            case "secret-post":
                return JSONResponse({**document, "token_endpoint_auth_method": "client_secret_post"})
            case "secret-member":
                return JSONResponse({**document, "client_secret": "s3cret"})
            case "private-key-jwt":
                return JSONResponse({**document, "token_endpoint_auth_method": "private_key_jwt"})
            case "array":
                return JSONResponse([document])
            case "html":
                return PlainTextResponse("<html><body>hello</body></html>", media_type="text/html")
            case "missing":
                return JSONResponse({"error": "not found"}, status_code=404)
            case "redirect":
                return RedirectResponse(url.replace("/redirect.json", "/client.json"), status_code=302)
            case "moved":
                return RedirectResponse(url.replace("/moved.json", "/client.json"), status_code=301)
            case "big":
                return JSONResponse({**document, "padding": "x" * 1_000_000})
            case "chunked-big":
                return StreamingResponse(_chunks(b"x" * 10_000, 100), media_type="application/json")
            case "slow":
                await asyncio.sleep(5)
                return JSONResponse(document)
            case "drip":
                return StreamingResponse(_drip(json.dumps(document).encode()), media_type="application/json")
            case "gzip":
                body = gzip.compress(json.dumps(document).encode())
                return Response(body, media_type="application/json", headers={"Content-Encoding": "gzip"})
            case "flaky":
                if count == 1:
                    return JSONResponse({**document, "client_id": "wrong"})
                return JSONResponse(document, headers={"Cache-Control": "max-age=0"})
        return JSONResponse({"error": "unknown fixture"}, status_code=404)


async def _chunks(chunk: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield chunk


async def _drip(body: bytes) -> AsyncIterator[bytes]:
    for byte in body:
        yield bytes([byte])
        await asyncio.sleep(0.25)


@pytest.fixture(scope="session")
def documents() -> Iterator[DocumentServer]:
    server = DocumentServer()
    with live_server(server.app):
        yield server


def assert_error_page(response: httpx2.Response, *, mentions: str | None = None) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    if mentions:
        assert mentions in response.text


@pytest.fixture
def fetch_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The authorization server's log of refused documents (it runs in this process)."""
    caplog.set_level(logging.INFO, logger="auth_server.clients.documents")
    return caplog


def assert_refused_because(response: httpx2.Response, log: pytest.LogCaptureFixture, reason: str) -> None:
    """The page says only that the document could not be used; the reason is in the log alone."""
    assert_error_page(response, mentions="could not be used")
    assert reason not in response.text
    assert reason in log.text


async def authorize(http: httpx2.AsyncClient, client_id: str) -> httpx2.Response:
    return await http.get("/authorize", params=authorize_params(client_id, new_pkce()))


# -- CM-01 / CM-04: the flow works, and the document's redirect URIs are the registered ones ---


async def test_a_url_client_id_is_fetched_and_the_flow_completes(
    http: httpx2.AsyncClient, documents: DocumentServer
) -> None:
    url = documents.url("client")
    pkce = new_pkce()
    response = await run_flow(http, authorize_params(url, pkce))
    assert documents.hits(url) == 1  # CM-01
    params = callback_dict(response.headers["location"])
    assert params["code"]
    token = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "code_verifier": pkce.verifier,
            "redirect_uri": REDIRECT_URI,
            "client_id": url,
        },
    )
    assert token.status_code == 200, token.text


async def test_the_consent_page_shows_the_client_id_host_and_name(
    http: httpx2.AsyncClient, documents: DocumentServer
) -> None:
    url = documents.url("client")
    response = await authorize(http, url)
    login = await http.get(response.headers["location"])
    consent = await sign_in(http, response.headers["location"])
    page = await http.get(consent.headers["location"])
    assert login.status_code == 200
    assert "Fixture Client" in page.text  # AZ-17: name and client_id host
    assert urlsplit(url).netloc in page.text


async def test_a_redirect_uri_not_in_the_document_is_an_error_page(
    http: httpx2.AsyncClient, documents: DocumentServer
) -> None:
    url = documents.url("client")
    params = authorize_params(url, new_pkce(), redirect_uri="http://127.0.0.1:53124/elsewhere")
    assert_error_page(await http.get("/authorize", params=params))  # CM-04


# -- CM-02: URL rules, checked before any fetch ------------------------------------------------


@pytest.mark.parametrize(
    "make_url",
    [
        lambda base: base,  # no path
        lambda base: base + "/",  # a bare slash is no document
        lambda base: base.replace("http://", "http://user:pw@") + "/{t}/client.json",
        lambda base: base + "/{t}/../{t}/client.json",
        lambda base: base + "/{t}/./client.json",
        lambda base: base + "/{t}/%2e%2e/client.json",
        lambda base: base + "/{t}/client.json#frag",
        lambda base: base + "/{t}/client.json#",
        lambda base: base + "/{t}/client .json",
        lambda base: base.replace("http://", "ftp://") + "/{t}/client.json",
    ],
    ids=[
        "no-path",
        "root",
        "userinfo",
        "dotdot",
        "dot",
        "encoded-dotdot",
        "fragment",
        "empty-fragment",
        "space",
        "ftp",
    ],
)
async def test_client_id_urls_breaking_the_rules_are_refused_without_a_fetch(
    http: httpx2.AsyncClient, documents: DocumentServer, make_url: Any
) -> None:
    token = uuid.uuid4().hex
    url = make_url(documents.base_url).replace("{t}", token)
    assert_error_page(await authorize(http, url))
    assert documents.hits(f"{documents.base_url}/{token}/client.json") == 0


async def test_plain_http_to_a_non_loopback_host_is_refused(http: httpx2.AsyncClient) -> None:
    assert_error_page(await authorize(http, "http://client.example/client.json"), mentions="https")


# -- CM-03 / CM-05: what a document must be ------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        "mismatch",
        "trailing-slash",
        "no-redirects",
        "no-name",
        "bad-redirect",
        "array",
        "html",
        "missing",
        "moved",
        "gzip",
    ],
)
async def test_an_unusable_document_is_an_error_page_and_no_redirect(
    http: httpx2.AsyncClient, documents: DocumentServer, kind: str
) -> None:
    url = documents.url(kind)
    assert_error_page(await authorize(http, url))  # CM-03
    assert documents.hits(url) == 1


@pytest.mark.parametrize("kind", ["secret-method", "secret-post", "secret-member", "private-key-jwt"])
async def test_a_document_claiming_a_shared_secret_is_refused(
    http: httpx2.AsyncClient, documents: DocumentServer, kind: str
) -> None:
    response = await authorize(http, documents.url(kind))
    assert_error_page(response)  # CM-05
    assert "secret" in response.text or "none" in response.text


async def test_the_token_endpoint_does_not_know_a_client_whose_document_is_bad(
    http: httpx2.AsyncClient, documents: DocumentServer
) -> None:
    response = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "code_verifier": "y" * 43,
            "client_id": documents.url("mismatch"),
        },
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


# -- CM-06: SSRF ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # decimal 127.0.0.1
        "0x7f000001",  # hex
        "0x7f.0.0.1",
        "127.1",  # short form
        "017700000001",  # octal
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
        "[::ffff:7f00:1]",
        "127.0.0.2",  # loopback, but not one of the literal hosts the setting allows
        "localhost.",  # a DNS name that resolves to loopback
    ],
)
async def test_other_spellings_of_loopback_are_refused_even_with_loopback_allowed(
    http: httpx2.AsyncClient, documents: DocumentServer, host: str
) -> None:
    token = uuid.uuid4().hex
    port = urlsplit(documents.base_url).port
    assert_error_page(await authorize(http, f"http://{host}:{port}/{token}/client.json"))
    assert_error_page(await authorize(http, f"https://{host}:{port}/{token}/client.json"))
    assert documents.hits(f"/{token}/client.json") == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/client.json",
        "https://172.16.5.4/client.json",
        "https://192.168.1.1/client.json",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/client.json",
        "https://0.0.0.0/client.json",
        "https://[fc00::1]/client.json",
        "https://[fe80::1]/client.json",
        "https://[::1]:1/client.json",
        "https://[2002:7f00:1::]/client.json",  # 6to4 wrapping 127.0.0.1
        "https://224.0.0.1/client.json",
    ],
)
async def test_special_use_addresses_are_never_fetched(
    make_http: HttpFactory, fetch_log: pytest.LogCaptureFixture, url: str
) -> None:
    # A timeout far beyond the test's own: only a refusal before connecting can answer in time,
    # and the reason logged is the address check's (fetch.py raises it before any connection).
    http = await make_http(cimd_allow_loopback=False, cimd_timeout=60.0)
    response = await authorize(http, url)
    assert_refused_because(response, fetch_log, "non-public")
    assert "timed out" not in fetch_log.text


async def test_without_the_loopback_setting_loopback_documents_are_refused(
    make_http: HttpFactory, documents: DocumentServer
) -> None:
    http = await make_http(cimd_allow_loopback=False)
    url = documents.url("client")
    assert_error_page(await authorize(http, url))
    assert_error_page(await authorize(http, url.replace("http://", "https://")))
    assert documents.hits(url) == 0


async def test_redirects_are_not_followed(
    http: httpx2.AsyncClient, documents: DocumentServer, fetch_log: pytest.LogCaptureFixture
) -> None:
    url = documents.url("redirect")
    assert_refused_because(await authorize(http, url), fetch_log, "redirects are not followed")
    assert documents.hits(url) == 1
    assert documents.hits(url.replace("/redirect.json", "/client.json")) == 0  # the target: no hit


# -- CM-07: size and time ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["big", "chunked-big"])
async def test_an_oversized_document_is_refused(
    http: httpx2.AsyncClient, documents: DocumentServer, fetch_log: pytest.LogCaptureFixture, kind: str
) -> None:
    assert_refused_because(await authorize(http, documents.url(kind)), fetch_log, "larger than")


@pytest.mark.parametrize("kind", ["slow", "drip"])
async def test_a_slow_document_is_refused_within_the_timeout_and_the_server_stays_responsive(
    make_http: HttpFactory, documents: DocumentServer, fetch_log: pytest.LogCaptureFixture, kind: str
) -> None:
    http = await make_http(cimd_timeout=1.0)
    url = documents.url(kind)
    slow = asyncio.create_task(authorize(http, url))

    async def fetching() -> bool:
        return documents.hits(url) == 1

    await eventually(fetching, "the server to start fetching the slow document")
    # Responsive: another request is answered while the fetch is still waiting on the slow host
    # (no stopwatch: the order of events is the proof). The refusal names the timeout, which the
    # slow host's document, sent only after it, could not have produced.
    assert (await http.get("/.well-known/oauth-authorization-server")).status_code == 200
    assert not slow.done(), "the slow fetch ended before the metadata request was answered"
    assert_refused_because(await slow, fetch_log, "longer than")


# -- CM-08: caching ---------------------------------------------------------------------------------


async def test_a_valid_document_is_cached_for_its_max_age(
    http: httpx2.AsyncClient, documents: DocumentServer
) -> None:
    url = documents.url("client")
    for _ in range(3):
        assert (await authorize(http, url)).status_code == 302
    assert documents.hits(url) == 1


async def test_a_no_store_document_is_fetched_every_time(
    http: httpx2.AsyncClient, documents: DocumentServer
) -> None:
    url = documents.url("nocache")
    for _ in range(2):
        assert (await authorize(http, url)).status_code == 302
    assert documents.hits(url) == 2


async def test_the_cache_ttl_setting_caps_the_documents_max_age(
    make_http: HttpFactory, documents: DocumentServer
) -> None:
    http = await make_http(cimd_cache_ttl=0)
    url = documents.url("client")
    for _ in range(2):
        assert (await authorize(http, url)).status_code == 302
    assert documents.hits(url) == 2


@in_every_deployment
async def test_an_invalid_document_is_not_cached_so_a_fixed_one_works_once_the_failure_is_forgotten(
    make_http: HttpFactory, documents: DocumentServer
) -> None:
    http = await make_http(cimd_failure_ttl=1)
    url = documents.url("flaky")
    assert_error_page(await authorize(http, url))
    assert_error_page(await authorize(http, url))  # the failure is remembered: no refetch...
    assert documents.hits(url) == 1
    deadline = time.monotonic() + 5
    while (response := await authorize(http, url)).status_code != 302:  # ...for CIMD_FAILURE_TTL
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.1)
    assert documents.hits(url) == 2  # the document itself was never cached (CIMD section 4.4)


# -- CM-09: the document's server is down ------------------------------------------------------------


async def test_an_unreachable_document_aborts_the_request_with_an_error_page(
    http: httpx2.AsyncClient,
) -> None:
    with bound_socket() as sock:  # bound but not listening: connection refused
        port = sock.getsockname()[1]
        response = await authorize(http, f"http://127.0.0.1:{port}/client.json")
    assert_error_page(response, mentions="could not be used")
