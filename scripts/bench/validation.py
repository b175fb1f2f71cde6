"""The cost of authentication itself, per request: validator calls and the protection middleware.

Measured in-process, with no HTTP in between, so the numbers are the validator's own:
- `internal`:            `InProcessTokenValidator` on the in-memory store, an opaque token issued
                         by the authorization server's own `TokenService`;
- `internal-jwt`:        the same with TOKEN_FORMAT=jwt (ES256, signature already remembered);
- `introspection-cached`: `IntrospectionValidator` answering from its cache (the first call went
                         to an RFC 7662 endpoint, here an in-memory transport);
- `jwt`:                 `JwtValidator` (external mode, TOKEN_FORMAT=jwt), ES256 keys from the
                         authorization server's own `SigningKeys`, JWKS already fetched;
- `stack/<validator>`:   the whole chain in front of the SDK (`OriginGuard` -> `BearerAuth` ->
                         `ScopeCheck` -> `EnrichPrincipal`) for a tools/call POST, down to an
                         application that reads the replayed body, the tenant record coming from
                         the cache (the app's: `look_up_tenant`); `stack/none` is the same chain
                         with AUTH_MODE=none; `stack/internal-no-tenant` leaves enrichment out, so
                         the difference to `stack/internal` is what a cached tenant costs;
                         `stack/internal-dpop` is `stack/internal` with a DPoP-bound token sent as
                         `Authorization: DPoP` with a fresh ES256 proof per request (RFC 9449; proofs
                         signed beforehand), the set of used proofs already full (its steady state
                         under load), so the difference to `stack/internal` is what DPoP costs;
- `dpop-proof`:          that proof check alone (`ProofVerifier.verify` and `consume`), of which
                         `dpop-signature` is the P-256 signature check (`cryptography`).

`python -m scripts.bench.validation [--json FILE] [--iterations N]`; run by `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx2
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.hashes import SHA256
from starlette.types import Message, Receive, Scope, Send

from auth_server.signing_keys import SigningKeys
from auth_server.tokens import TokenService
from auth_server.validator import InProcessTokenValidator
from mcp_server.protection import endpoint_guard
from mcp_server.protection.enrichment import TenantCache
from shared.dpop import ProofVerifier
from shared.dpop.replay import LOCAL_CAPACITY, LocalReplayGuard
from shared.settings import Settings
from shared.storage.factory import open_store
from shared.validation import TokenValidator
from shared.validators.introspection import IntrospectionValidator
from shared.validators.jwt import JwtValidator
from tests.fixtures.dpop_client import DPoPKey

PORT = 3232
RESOURCE = f"http://127.0.0.1:{PORT}/mcp"
SCOPES = ["mcp:tools:read"]
JWT = "jwt"  # the TOKEN_FORMAT value
BODY = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "echo",
            "arguments": {"message": "hello"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
            },
        },
    },
    separators=(",", ":"),
).encode()


# The headers of that POST (a stateless 2026-07-28 request names its method and tool in headers).
TOOLS_CALL_HEADERS = [
    (b"host", f"127.0.0.1:{PORT}".encode()),
    (b"content-type", b"application/json"),
    (b"accept", b"application/json, text/event-stream"),
    (b"mcp-protocol-version", b"2026-07-28"),
    (b"mcp-method", b"tools/call"),
    (b"mcp-name", b"echo"),
    (b"content-length", str(len(BODY)).encode()),
]


def settings(**values: Any) -> Settings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "mcp_port": PORT,
        "log_level": "WARNING",
        "redis_url": None,
        "showcase": True,  # the requests call the showcase's echo
    }
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg]


async def issue(config: Settings) -> tuple[str, InProcessTokenValidator, SigningKeys]:
    store = open_store(config)
    keys = SigningKeys.from_settings(config, store)
    tokens = TokenService.from_settings(config, store, keys)
    issued = await tokens.issue(
        client_id="bench-client", subject="bench-user", scopes=SCOPES, resource=RESOURCE, grant_id="g1"
    )
    return issued.access_token, InProcessTokenValidator.from_settings(config, store, keys=keys), keys


async def issue_dpop_bound(key: DPoPKey) -> tuple[str, InProcessTokenValidator]:
    """An opaque internal token bound to `key` (`cnf.jkt`), as the token endpoint issues after a proof."""
    config = settings(auth_mode="internal")
    store = open_store(config)
    keys = SigningKeys.from_settings(config, store)
    issued = await TokenService.from_settings(config, store, keys).issue(
        client_id="bench-client",
        subject="bench-user",
        scopes=SCOPES,
        resource=RESOURCE,
        grant_id="g1",
        cnf_jkt=key.jkt,
    )
    return issued.access_token, InProcessTokenValidator.from_settings(config, store, keys=keys)


async def full_proof_verifier() -> ProofVerifier:
    """The resource server's verifier with its set of used proofs full, as it is after a few
    minutes of DPoP traffic: filled, then as many evicted (every new proof evicts the oldest)."""
    replay = LocalReplayGuard()
    verifier = ProofVerifier(replay=replay)
    # Deadlines that grow (as later proofs' do) and stay below a fresh proof's (iat + max age), so
    # that the evictions leave fresh proofs acceptable (above the horizon).
    filled = 2 * LOCAL_CAPACITY
    last = time.time() + verifier.max_age * 0.8
    for index in range(filled):
        await replay.first_use("bench", str(index), until=last - (filled - index) / 1000)
    return verifier


def proof_supply(key: DPoPKey, token: str, iterations: int) -> Iterator[str]:
    """Fresh single-use proofs for `timed`'s warm-up and measured calls, signed beforehand."""
    return iter([key.proof("POST", RESOURCE, token=token) for _ in range(min(1000, iterations) + iterations)])


async def introspection_validator(token: str) -> IntrospectionValidator:
    answer = {
        "active": True,
        "sub": "bench-user",
        "client_id": "bench-client",
        "scope": " ".join(SCOPES),
        "aud": RESOURCE,
        "iss": "http://127.0.0.1:3001",
        "exp": int(time.time()) + 3600,
        "token_type": "Bearer",
    }

    def handler(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=answer)

    validator = IntrospectionValidator(
        endpoint="http://127.0.0.1:3001/introspect",
        client_id="rs",
        client_secret="secret",  # noqa: S106 - a benchmark stand-in
        resource=RESOURCE,
        issuer="http://127.0.0.1:3001",
        client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    await validator.validate(token)
    assert validator.calls == 1
    return validator


async def jwt_validator() -> tuple[str, JwtValidator]:
    issuer = "http://127.0.0.1:3001"
    config = settings(auth_mode="external", token_format=JWT, auth_issuer_url=issuer)
    store = open_store(config)
    keys = SigningKeys.from_settings(config, store)
    tokens = TokenService.from_settings(config, store, keys)
    issued = await tokens.issue(
        client_id="bench-client", subject="bench-user", scopes=SCOPES, resource=RESOURCE, grant_id="g1"
    )
    jwks = await keys.public_jwks()

    def handler(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=jwks)

    validator = JwtValidator(
        issuer=issuer,
        resource=RESOURCE,
        jwks_uri=f"{issuer}/jwks",
        client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    await validator.validate(issued.access_token)
    return issued.access_token, validator


async def timed(call: Callable[[], Awaitable[Any]], iterations: int) -> dict[str, float]:
    for _ in range(min(1000, iterations)):  # warm caches, JIT-free but allocator-warm
        await call()
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        await call()
        samples.append((clock() - start) / 1000)
    samples.sort()
    return {
        "iterations": iterations,
        "p50_us": round(statistics.median(samples), 2),
        "p99_us": round(samples[int(len(samples) * 0.99) - 1], 2),
        "mean_us": round(statistics.fmean(samples), 2),
    }


def stack_call(
    validator: TokenValidator | None,
    token: str | None,
    *,
    enrich: bool = True,
    dpop: tuple[ProofVerifier, Iterator[str]] | None = None,
) -> Callable[[], Awaitable[None]]:
    """One request through OriginGuard -> BearerAuth -> ScopeCheck -> EnrichPrincipal to an app
    that reads the body; with `dpop` (the verifier, the proofs), `token` goes in the DPoP scheme
    with the next proof."""
    config = settings(auth_mode="internal" if validator is not None else "none")
    guard = endpoint_guard(
        config,
        validator=validator,
        api_key_validator=None,
        tool_scopes=lambda _name: None,
        tenants=TenantCache.from_settings(config) if enrich else None,
        proofs=dpop[0] if dpop is not None else None,
    )
    reached: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["body"] == BODY
        reached.append(True)

    wrapped = guard(app)
    headers = [*TOOLS_CALL_HEADERS, (b"user-agent", b"bench")]
    if token is not None:
        scheme = "DPoP" if dpop is not None else "Bearer"
        headers.append((b"authorization", f"{scheme} {token}".encode()))

    async def receive() -> Message:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: Message) -> None:
        raise AssertionError(f"the chain answered by itself: {message}")

    async def call() -> None:
        scope: Scope = {
            "type": "http",
            "method": "POST",
            "path": "/mcp",
            "query_string": b"",
            "headers": list(headers) if dpop is None else [*headers, (b"dpop", next(dpop[1]).encode())],
            "state": {},
        }
        reached.clear()
        await wrapped(scope, receive, send)
        assert reached

    return call


async def run(iterations: int) -> dict[str, Any]:
    opaque, internal, _ = await issue(settings(auth_mode="internal"))
    jwt_internal_token, internal_jwt, _ = await issue(settings(auth_mode="internal", token_format=JWT))
    introspection = await introspection_validator(opaque)
    jwt_token, jwt = await jwt_validator()

    validators: dict[str, tuple[TokenValidator, str]] = {
        "internal": (internal, opaque),
        "internal-jwt": (internal_jwt, jwt_internal_token),
        "introspection-cached": (introspection, opaque),
        "jwt": (jwt, jwt_token),
    }
    results: dict[str, Any] = {}
    for name, (validator, token) in validators.items():
        results[name] = await timed(lambda v=validator, t=token: v.validate(t), iterations)  # type: ignore[misc]
    stack: dict[str, Any] = {"none": await timed(stack_call(None, None), iterations)}
    for name, (validator, token) in validators.items():
        stack[name] = await timed(stack_call(validator, token), iterations)
    stack["internal-no-tenant"] = await timed(stack_call(internal, opaque, enrich=False), iterations)
    key = DPoPKey.generate()
    bound, bound_validator = await issue_dpop_bound(key)
    proofs = proof_supply(key, bound, iterations)
    stack["internal-dpop"] = await timed(
        stack_call(bound_validator, bound, dpop=(await full_proof_verifier(), proofs)), iterations
    )
    assert introspection.calls == 1, "the cached benchmark must not introspect again"
    # Apart from "results": the validation-time target (< 0.1 ms) is about tokens, not proofs.
    return {"results": results, "stack": stack, "dpop": await dpop_results(iterations)}


async def dpop_results(iterations: int) -> dict[str, Any]:
    """`dpop-proof` (the whole check of a fresh proof) and `dpop-signature` (its signature alone)."""
    key = DPoPKey.generate()
    verifier = await full_proof_verifier()
    access_token = secrets.token_urlsafe(32)  # the length of ours
    proofs = proof_supply(key, access_token, iterations)

    async def check() -> None:
        await verifier.consume(
            await verifier.verify(next(proofs), method="POST", url=RESOURCE, access_token=access_token)
        )

    signing_input = key.proof("POST", RESOURCE, token=access_token).rpartition(".")[0].encode()
    private = ec.generate_private_key(ec.SECP256R1())
    signature, public = private.sign(signing_input, ec.ECDSA(SHA256())), private.public_key()

    async def signature_only() -> None:
        public.verify(signature, signing_input, ec.ECDSA(SHA256()))

    return {
        "dpop-proof": await timed(check, iterations),
        "dpop-signature": await timed(signature_only, iterations),
    }


def line(stats: dict[str, float]) -> str:
    return f"p50 {stats['p50_us']:8.2f}  p99 {stats['p99_us']:8.2f}  mean {stats['mean_us']:8.2f}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.validation", description=__doc__)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.iterations))
    print("validator call (us):")
    for name, stats in report["results"].items():
        print(f"  {name:22} {line(stats)}")
    print("DPoP proof check, in-process (us):")
    for name, stats in report["dpop"].items():
        print(f"  {name:22} {line(stats)}")
    print("OriginGuard -> BearerAuth -> ScopeCheck -> EnrichPrincipal, tools/call POST (us):")
    for name, stats in report["stack"].items():
        print(f"  {name:22} {line(stats)}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
