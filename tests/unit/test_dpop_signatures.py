"""Proof signatures checked back to back (`shared/dpop/signatures.py`): batching changes when a
check runs, never what it answers or whom it answers. Driven through the real `ProofVerifier`
with real ES256 proofs where the answer matters, and through `BackToBack` alone for its order."""

from __future__ import annotations

import asyncio

import pytest

from shared.dpop import ProofRejected, ProofVerifier, VerifiedProof
from shared.dpop.replay import LocalReplayGuard
from shared.dpop.signatures import BackToBack
from tests.fixtures.dpop_client import DPoPKey

URL = "http://127.0.0.1:3232/mcp"
TOKEN = "an-access-token"


def verifier() -> ProofVerifier:
    return ProofVerifier(replay=LocalReplayGuard())


async def test_proofs_checked_in_one_turn_each_get_their_own_answer() -> None:
    alice, bob, mallory = DPoPKey.generate(), DPoPKey.generate(), DPoPKey.generate()
    proofs = [
        alice.proof("POST", URL, token=TOKEN),
        mallory.proof("POST", URL, token=TOKEN, sign_with=bob),  # mallory's key, bob's signature
        bob.proof("POST", URL, token=TOKEN),
        alice.proof("POST", URL, token=TOKEN),
    ]
    checking = verifier()

    answers = await asyncio.gather(
        *(checking.verify(proof, method="POST", url=URL, access_token=TOKEN) for proof in proofs),
        return_exceptions=True,
    )

    assert [type(answer) for answer in answers] == [
        VerifiedProof,
        ProofRejected,
        VerifiedProof,
        VerifiedProof,
    ]
    assert [answer.jkt for answer in answers if isinstance(answer, VerifiedProof)] == [
        alice.jkt,
        bob.jkt,
        alice.jkt,
    ]
    assert isinstance(answers[1], ProofRejected)
    assert "signature" in answers[1].description


async def test_the_checks_of_one_turn_all_run_before_any_waiting_request_resumes() -> None:
    batch = BackToBack()
    events: list[str] = []

    def check(name: str, answer: bool) -> bool:
        events.append(f"check {name}")
        return answer

    async def request(name: str, answer: bool) -> None:
        result = await batch.check(lambda: check(name, answer))
        events.append(f"resume {name} {result}")

    await asyncio.gather(request("a", True), request("b", False), request("c", True))

    assert events == ["check a", "check b", "check c", "resume a True", "resume b False", "resume c True"]


async def test_a_check_asked_for_after_a_batch_ran_gets_a_batch_of_its_own() -> None:
    batch = BackToBack()
    assert await batch.check(lambda: True) is True
    assert await batch.check(lambda: False) is False


async def test_a_check_that_raises_fails_only_its_own_request() -> None:
    batch = BackToBack()

    def broken() -> bool:
        raise RuntimeError("a bug in one check")

    answers = await asyncio.gather(
        batch.check(lambda: True), batch.check(broken), batch.check(lambda: True), return_exceptions=True
    )

    assert answers[0] is True
    assert answers[2] is True
    assert isinstance(answers[1], RuntimeError)


async def test_a_request_cancelled_while_it_waits_is_skipped_and_the_others_still_answered() -> None:
    batch = BackToBack()
    ran: list[str] = []

    def check(name: str) -> bool:
        ran.append(name)
        return True

    gone = asyncio.ensure_future(batch.check(lambda: check("gone")))
    staying = asyncio.ensure_future(batch.check(lambda: check("staying")))
    await asyncio.sleep(0)  # both are now waiting in the open batch
    gone.cancel()

    assert await asyncio.wait_for(staying, timeout=5) is True
    assert ran == ["staying"]
    with pytest.raises(asyncio.CancelledError):
        await gone


def test_a_check_left_pending_on_a_stopped_loop_does_not_hold_up_checks_on_another_loop() -> None:
    batch = BackToBack()
    first = asyncio.new_event_loop()
    left: list[asyncio.Task[bool]] = []

    def ask_then_stop() -> None:
        left.append(first.create_task(batch.check(lambda: True)))
        first.call_soon(first.stop)  # runs in the check's own turn: its batch is never reached

    first.call_soon(ask_then_stop)
    first.run_forever()
    assert not left[0].done()

    assert asyncio.run(asyncio.wait_for(batch.check(lambda: False), timeout=5)) is False

    assert first.run_until_complete(left[0]) is True  # the first loop's batch still answers its own
    first.close()
