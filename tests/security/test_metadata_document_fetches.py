"""What an anonymous caller can make the authorization server fetch (issue 9 item 7, CIMD part).

A client ID metadata document URL arrives in an unauthenticated /authorize request, so anyone
chooses what the server fetches. Before the fix: a URL that failed was fetched again on every
request (the AS as a load generator against any host), without limit per URL or per caller, and
the error page said what the network answered ("the server answered HTTP 404" here, "could not be
fetched (ConnectError)" there): a port scanner with the server's address. Now a failure is
remembered for CIMD_FAILURE_TTL (30 s) without refetching, each URL is fetched at most 12 times a
minute and each client address causes at most 20 fetches a minute, and every failure has one
message (the reason is in the server's log). On both stores (internal mode): the failure memory
and the counters live in the Store.
"""

from __future__ import annotations

import re

import httpx2

from auth_server.clients.documents import FETCHES_PER_ADDRESS_PER_MINUTE, FETCHES_PER_URL_PER_MINUTE
from tests.fixtures.live_server import bound_socket
from tests.integration.auth.conftest import BOTH_STORES, HttpFactory
from tests.integration.auth.flow_helpers import authorize_params, new_pkce
from tests.security.document_host import DocumentHost

# On both stores: the failure memory and the fetch counters live in the Store (the fetches are the
# same code in both modes' apps).
DEPLOYMENTS = BOTH_STORES


async def authorize(http: httpx2.AsyncClient, client_id: str) -> httpx2.Response:
    return await http.get("/authorize", params=authorize_params(client_id, new_pkce()))


def what_the_page_says(response: httpx2.Response) -> str:
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    match = re.search(r'role="alert">(?P<text>.*?)</p>', response.text, re.S)
    assert match, response.text
    return match["text"]


async def test_a_failing_document_is_not_fetched_again_on_every_request(
    http: httpx2.AsyncClient, document_host: DocumentHost
) -> None:
    url = document_host.serve(b'{"error": "gone"}', status=404)
    for _ in range(10):
        assert (await authorize(http, url)).status_code == 400
    assert document_host.hits(url) == 1


async def test_an_invalid_document_is_not_fetched_again_either(
    http: httpx2.AsyncClient, document_host: DocumentHost
) -> None:
    url = document_host.client_document(client_id="https://someone-else.example/client.json")
    for _ in range(10):
        assert (await authorize(http, url)).status_code == 400
    assert document_host.hits(url) == 1


async def test_the_error_page_does_not_tell_whether_a_host_or_port_answered(
    http: httpx2.AsyncClient, document_host: DocumentHost
) -> None:
    with bound_socket() as sock:  # bound, not listening: connection refused
        closed_port = f"http://127.0.0.1:{sock.getsockname()[1]}/scan/client.json"
        pages = {
            "closed port": what_the_page_says(await authorize(http, closed_port)),
            "404": what_the_page_says(await authorize(http, document_host.serve(b"{}", status=404))),
            "500": what_the_page_says(await authorize(http, document_host.serve(b"{}", status=500))),
            "redirect": what_the_page_says(await authorize(http, document_host.serve(b"", status=302))),
            "not JSON": what_the_page_says(await authorize(http, document_host.serve(b"<html>"))),
            "not a client": what_the_page_says(await authorize(http, document_host.serve(b'{"a": 1}'))),
        }
    assert len(set(pages.values())) == 1, pages
    said = next(iter(pages.values()))
    for revealing in ("HTTP", "404", "500", "ConnectError", "refused", "redirect", "JSON", "resolve"):
        assert revealing not in said, said


async def test_one_url_is_fetched_at_most_12_times_a_minute_whoever_asks(
    make_http: HttpFactory, document_host: DocumentHost
) -> None:
    url = document_host.client_document(headers={"Cache-Control": "no-store"})  # valid, never cached
    callers = [await make_http() for _ in range(FETCHES_PER_URL_PER_MINUTE + 3)]  # an address each
    statuses = [(await authorize(caller, url)).status_code for caller in callers]
    assert statuses == [302] * FETCHES_PER_URL_PER_MINUTE + [429] * 3
    assert document_host.hits(url) == FETCHES_PER_URL_PER_MINUTE


async def test_one_address_causes_at_most_20_fetches_a_minute(
    http: httpx2.AsyncClient, document_host: DocumentHost
) -> None:
    urls = [document_host.serve(b"{}", status=404) for _ in range(FETCHES_PER_ADDRESS_PER_MINUTE + 5)]
    statuses = [(await authorize(http, url)).status_code for url in urls]
    assert statuses == [400] * FETCHES_PER_ADDRESS_PER_MINUTE + [429] * 5
    assert sum(document_host.hits(url) for url in urls) == FETCHES_PER_ADDRESS_PER_MINUTE
    refused = await authorize(http, urls[-1])
    assert 0 < int(refused.headers["retry-after"]) <= 60


async def test_a_good_document_is_still_fetched_once_and_cached(
    http: httpx2.AsyncClient, document_host: DocumentHost
) -> None:
    url = document_host.client_document()
    for _ in range(5):
        assert (await authorize(http, url)).status_code == 302
    assert document_host.hits(url) == 1
