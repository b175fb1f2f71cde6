"""Observability of a real server process: JSON log lines with a request id and no credential in
them (uvicorn's access log included), and Prometheus metrics at /metrics, guarded.

One `python -m mcp_server` (internal mode, LOG_FORMAT=json, the default) is driven through a real
OAuth flow and a few requests that put credentials where a careless client would, then stopped
so its log is complete. The /metrics guard is checked in process, where the peer address can be
chosen.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from mcp_server.app import create_app
from shared.settings import Settings
from tests.e2e.servers import Deployment, build_deployment
from tests.resilience.cluster import TIMEOUT, modern_call

pytestmark = pytest.mark.timeout(60)

SECRETS = {
    "query": "QUERYSECRETqwertyuiop0123456789",
    "code": "CODESECRETasdfghjkl0123456789",
    "client_secret": "CLIENTSECRETzxcvbnm0123456789",
    "bearer": "BEARERSECRETpoiuytrewq0123456789",
    "refresh": "REFRESHSECRETlkjhgfdsa0123456789",
}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Deployment, dict[str, httpx2.Response]]:
    """Run the traffic once, stop the server (its log is then complete), and hand both over."""
    deployment = build_deployment("internal", "memory", Path(tmp_path_factory.mktemp("observability")))
    deployment.start()
    answers: dict[str, httpx2.Response] = {}
    try:
        from tests.e2e.oauth_flow import mint

        grant = mint(deployment.mcp_url)
        base = deployment.base_url
        with httpx2.Client(base_url=base, timeout=TIMEOUT, trust_env=False) as http:
            answers["traced"] = http.get("/healthz", headers={"x-request-id": "trace-abc-123"})
            answers["fresh"] = http.get("/healthz")
            # Credentials where they do not belong: in query strings (written by the access log),
            # in a bearer header that fails, in a form that fails.
            answers["query_token"] = http.post(f"/mcp?access_token={SECRETS['query']}", json={})
            answers["wrong_method"] = http.get(
                f"/token?code={SECRETS['code']}&client_secret={SECRETS['client_secret']}"
            )
            answers["bad_bearer"] = http.post(
                "/mcp", json={}, headers={"authorization": f"Bearer {SECRETS['bearer']}"}
            )
            answers["bad_refresh"] = http.post(
                "/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": SECRETS["refresh"],
                    "client_id": "nobody",
                },
            )
            body, headers = modern_call("whoami", {}, grant.tokens.access_token)
            answers["whoami"] = http.post("/mcp", json=body, headers=headers)
            answers["unknown_path"] = http.get("/no/such/page")
            answers["metrics"] = http.get("/metrics")
        SECRETS["minted_access"] = grant.tokens.access_token
        SECRETS["minted_refresh"] = grant.tokens.refresh_token or "-"
        SECRETS["minted_code"] = grant.authorization.code or "-"
    finally:
        deployment.stop()
    return deployment, answers


def log_lines(deployment: Deployment) -> list[dict[str, object]]:
    text = deployment.processes[-1].log_path.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_log_line_is_json_with_time_level_logger_and_message(
    served: tuple[Deployment, dict[str, httpx2.Response]],
) -> None:
    deployment, _ = served
    lines = log_lines(deployment)  # json.loads fails on any line that is not JSON
    assert len(lines) > 10
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= line.keys(), line
    assert any(line["logger"] == "uvicorn.access" for line in lines)
    assert any(line["logger"] == "auth_server.audit" and "audit" in line for line in lines)


def test_the_request_id_is_echoed_and_names_the_access_log_line_of_its_request(
    served: tuple[Deployment, dict[str, httpx2.Response]],
) -> None:
    deployment, answers = served
    assert answers["traced"].headers["x-request-id"] == "trace-abc-123"
    generated = answers["fresh"].headers["x-request-id"]
    assert len(generated) == 32
    by_id = {
        line.get("request_id"): line for line in log_lines(deployment) if line["logger"] == "uvicorn.access"
    }
    assert "GET /healthz" in str(by_id["trace-abc-123"]["message"])
    assert generated in by_id


def test_no_token_code_or_secret_reaches_the_log(
    served: tuple[Deployment, dict[str, httpx2.Response]],
) -> None:
    deployment, answers = served
    assert answers["wrong_method"].status_code == 405
    assert answers["bad_bearer"].status_code == 401
    text = deployment.processes[-1].log_path.read_text()
    leaked = [name for name, secret in SECRETS.items() if secret in text]
    assert not leaked, f"leaked into the log: {leaked}"
    # The access log did write those requests, with the values blanked.
    assert "code=[redacted]&client_secret=[redacted]" in text
    assert "POST /mcp?access_token=[redacted]" in text


def test_metrics_count_requests_auth_failures_and_issued_tokens(
    served: tuple[Deployment, dict[str, httpx2.Response]],
) -> None:
    _, answers = served
    metrics = answers["metrics"]
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    at_least = {
        'mcpref_http_requests_total{method="GET",route="/healthz",status="200"}': 2,  # + start-up polls
        'mcpref_http_requests_total{method="POST",route="/mcp",status="200"}': 1,
        'mcpref_http_requests_total{method="POST",route="/mcp",status="401"}': 2,
        'mcpref_http_requests_total{method="GET",route="other",status="404"}': 1,
        'mcpref_auth_failures_total{reason="missing"}': 1,
        'mcpref_auth_failures_total{reason="unknown"}': 1,
        'mcpref_tokens_issued_total{grant_type="authorization_code"}': 1,
        'mcpref_audit_events_total{event="login_succeeded"}': 1,
        'mcpref_http_request_duration_seconds_count{method="POST",route="/mcp"}': 3,
        "mcpref_token_validation_duration_seconds_count": 1,
        "process_resident_memory_bytes": 1,
    }
    for name, least in at_least.items():
        assert samples.get(name, 0) >= least, f"{name} = {samples.get(name)} in /metrics"
    assert samples['mcpref_tokens_issued_total{grant_type="refresh_token"}'] == 0
    assert "/no/such/page" not in text, "an unknown path must not become a label"


def metrics_app(**settings: object) -> httpx2.AsyncClient:
    app = create_app(Settings(_env_file=None, **settings))  # type: ignore[call-arg]
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app, client=("203.0.113.7", 4242)), base_url="http://127.0.0.1:3232"
    )


async def test_metrics_answer_only_loopback_clients_unless_a_token_is_configured() -> None:
    async with metrics_app() as remote:
        refused = await remote.get("/metrics")
    assert refused.status_code == 403, refused.text
    token = "metrics-token-0123456789abcdef"
    async with metrics_app(metrics_token=token) as remote:
        assert (await remote.get("/metrics")).status_code == 401
        assert (await remote.get("/metrics", headers={"authorization": "Bearer wrong"})).status_code == 401
        allowed = await remote.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert allowed.status_code == 200
    assert "mcpref_http_requests_total" in allowed.text


async def test_metrics_can_be_switched_off() -> None:
    async with metrics_app(metrics_enabled=False) as remote:
        assert (await remote.get("/metrics")).status_code == 404
