"""No user-name oracle at the login form (issue 9, item 9), against real processes.

The attack, as found at 8e585b0: a user hashed at the cost the hashing script recommended
(scrypt N=2^17) took 575 ms to refuse a wrong password, an unknown name 67 ms (the decoy for
unknown names had a fixed, lower cost), so timing told which names exist.

What is compared here is the work itself, not a stopwatch: every password hash the server
computes is counted, with its scheme and parameters, in `mcpref_password_hashes_total` on the
authorization server's /metrics. A wrong password for a known name and any password for an
unknown name must each cost exactly one hash with the same scheme and parameters, for hashes
made by scripts/hash-password.py (argon2id at OWASP's parameters) and for a deployment whose
users have another cost (scrypt, the earlier format, at N=2^15). The sign-in form is the same in
both modes (internal: the MCP process; external: the standalone authorization server); users
come from configuration, so the store does not matter.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from auth_server.users import scrypt_hash
from tests.e2e.oauth_flow import authorization_url, discover, pkce_pair, register
from tests.e2e.servers import PYTHON, REPO_ROOT, Deployment
from tests.integration.auth.flow_helpers import form_action, hidden_fields

CALLBACK = "http://127.0.0.1:9/callback"
Work = tuple[str, str]  # (scheme, parameters) of one hash computation


def script_hash(password: str) -> str:
    """A hash made the way the docs say: scripts/hash-password.py, password on stdin."""
    done = subprocess.run(
        [PYTHON, str(REPO_ROOT / "scripts" / "hash-password.py"), "--stdin"],
        input=password,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


ALICE_PASSWORD = f"alice-{uuid.uuid4().hex}"
ALICE_HASH = script_hash(ALICE_PASSWORD)
OTHER_COST = scrypt_hash("bob-password", n=2**15)  # a cost that is neither default, old or new


def hashes_computed(deployment: Deployment) -> dict[Work, float]:
    with httpx2.Client(timeout=10.0, trust_env=False) as http:
        text = http.get(f"{deployment.issuer}/metrics").text
    counts: dict[Work, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "mcpref_password_hashes":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[(sample.labels["scheme"], sample.labels["parameters"])] = sample.value
    return counts


def sign_in(
    deployment: Deployment, username: str, password: str
) -> tuple[httpx2.Response, dict[Work, float]]:
    """One sign-in attempt at the real form; its answer and the hash work it caused."""
    discovery = discover(deployment.mcp_url)
    app = register(discovery, CALLBACK)
    _, challenge = pkce_pair()
    url = authorization_url(
        discovery,
        app.client_id,
        CALLBACK,
        scope="mcp:tools:read",
        resource=deployment.mcp_url,
        state="s",
        challenge=challenge,
    )
    with httpx2.Client(timeout=30.0, trust_env=False, follow_redirects=False) as browser:
        login = browser.get(url)
        assert login.status_code in (302, 303), login.text
        page = browser.get(httpx2.URL(url).join(login.headers["location"]))
        assert page.status_code == 200, page.text
        before = hashes_computed(deployment)
        answer = browser.post(
            httpx2.URL(url).join(form_action(page.text)),
            data={**hidden_fields(page.text), "username": username, "password": password},
        )
        after = hashes_computed(deployment)
    work = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    return answer, work


def sign_in_to_account(
    deployment: Deployment, username: str, password: str
) -> tuple[httpx2.Response, dict[Work, float]]:
    """The same at the account page's own sign-in form."""
    with httpx2.Client(base_url=deployment.issuer, timeout=30.0, trust_env=False) as browser:
        page = browser.get("/account")
        assert page.status_code == 200, page.text
        before = hashes_computed(deployment)
        answer = browser.post(
            form_action(page.text),
            data={**hidden_fields(page.text), "username": username, "password": password},
        )
        after = hashes_computed(deployment)
    work = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    return answer, work


def assert_refused(answer: httpx2.Response) -> None:
    assert answer.status_code == 303, answer.text
    assert "failed=1" in answer.headers["location"]


BOTH_MODES = [
    pytest.param(("internal", "memory"), id="internal-memory"),
    pytest.param(("external", "memory"), id="external-memory"),
]
DEPLOYMENT_ENV = {"AUTH_USERS": json.dumps({"alice": ALICE_HASH})}


def test_the_hashing_script_makes_argon2id_at_owasps_parameters() -> None:
    assert ALICE_HASH.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


@pytest.mark.parametrize("deployment", BOTH_MODES, indirect=True)
def test_an_unknown_name_costs_what_a_known_name_with_a_wrong_password_costs(deployment: Deployment) -> None:
    known, known_work = sign_in(deployment, "alice", "not-her-password")
    unknown, unknown_work = sign_in(deployment, f"nobody-{uuid.uuid4().hex[:8]}", "not-her-password")
    assert_refused(known)
    assert_refused(unknown)
    assert known_work == unknown_work == {("argon2id", "m=19456,t=2,p=1"): 1}
    for attempt in (sign_in_to_account(deployment, n, "not-her-password") for n in ("alice", "nobody")):
        assert attempt[0].status_code == 303, attempt[0].text
        assert "failed=1" in attempt[0].headers["location"]
        assert attempt[1] == known_work  # the account page's sign-in form: the same
    right, right_work = sign_in(deployment, "alice", ALICE_PASSWORD)
    assert right.status_code == 303, right.text
    assert "failed=1" not in right.headers["location"]  # the script's hash really signs alice in
    assert right_work == known_work


@pytest.mark.parametrize("deployment", BOTH_MODES, indirect=True)
def test_the_decoy_takes_the_cost_the_configured_users_have(
    deployment: Deployment, start_deployment: Callable[..., Deployment]
) -> None:
    """Users at another cost (scrypt, N=2^15): unknown names cost exactly that. One user at a
    cost of its own (dave) is the one that timing can tell apart, and start-up names him."""
    dave = scrypt_hash("dave-password", n=2**14)
    users = {"bob": OTHER_COST, "carol": scrypt_hash("carol-password", n=2**15), "dave": dave}
    other = start_deployment(deployment.mode, "memory", {"AUTH_USERS": json.dumps(users)})
    bob, bob_work = sign_in(other, "bob", "wrong")
    unknown, unknown_work = sign_in(other, "nobody", "wrong")
    assert_refused(bob)
    assert_refused(unknown)
    assert bob_work == unknown_work == {("scrypt", "n=32768,r=8,p=1"): 1}
    assert sign_in(other, "dave", "wrong")[1] == {("scrypt", "n=16384,r=8,p=1"): 1}
    log = "".join(process.log_path.read_text() for process in other.processes)
    assert "the hashes of dave cost other than most (scrypt n=32768,r=8,p=1)" in log
    assert "the hashes of bob, carol, dave are below OWASP's minimum cost" in log
