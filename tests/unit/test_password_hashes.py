"""Password hashes and the sign-in check (auth_server/users.py); tests/security/test_user_name_oracle.py
attacks the login form itself."""

from __future__ import annotations

import asyncio
import threading

import pytest

from auth_server.users import (
    Argon2idHash,
    BadPasswordHash,
    ScryptHash,
    SignInBusy,
    UserDirectory,
    decoy_for,
    hash_password,
    parse_password_hash,
    scrypt_hash,
)


def test_the_default_is_argon2id_at_owasps_parameters_and_verifies() -> None:
    stored = parse_password_hash(hash_password("correct horse"))
    assert isinstance(stored, Argon2idHash)
    assert (stored.scheme, stored.parameters) == ("argon2id", "m=19456,t=2,p=1")
    assert not stored.below_minimum
    assert stored.matches("correct horse")
    assert not stored.matches("correct horse ")


def test_scrypt_hashes_of_the_earlier_format_keep_verifying() -> None:
    stored = parse_password_hash(scrypt_hash("old password", n=2**14))
    assert isinstance(stored, ScryptHash)
    assert stored.matches("old password")
    assert not stored.matches("new password")
    assert stored.below_minimum  # start-up warns: OWASP's scrypt minimum is N=2^17 (r=8, p=1)
    assert not parse_password_hash(scrypt_hash("x", n=2**17)).below_minimum


@pytest.mark.parametrize(
    "encoded",
    [
        "plaintext",
        "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$argon2id$v=19$m=9999999,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$argon2id$garbage",
        "scrypt$1048576$8$1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",  # 1 GiB of memory per attempt
        "scrypt$1000$8$1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
    ],
)
def test_hashes_that_are_malformed_weak_in_kind_or_absurdly_costly_are_refused(encoded: str) -> None:
    with pytest.raises(BadPasswordHash):
        parse_password_hash(encoded)


def test_a_decoy_costs_the_same_and_matches_nothing() -> None:
    for stored in (parse_password_hash(hash_password("p")), parse_password_hash(scrypt_hash("p", n=2**10))):
        decoy = stored.decoy()
        assert (decoy.scheme, decoy.parameters) == (stored.scheme, stored.parameters)
        assert not decoy.matches("p")


def test_the_decoy_follows_the_cost_most_users_have() -> None:
    cheap = [parse_password_hash(scrypt_hash(f"p{n}", n=2**10)) for n in range(2)]
    strong = parse_password_hash(hash_password("p"))
    assert decoy_for([strong, *cheap]).parameters == "n=1024,r=8,p=1"
    assert decoy_for([strong]).parameters == "m=19456,t=2,p=1"
    assert decoy_for([cheap[0], strong]).parameters == "n=1024,r=8,p=1"  # a tie: the first configured


class Gate:
    """A stored hash whose check waits for the test: counts how many run at once."""

    scheme = "test"
    parameters = "gate"
    below_minimum = False

    def __init__(self) -> None:
        self.release = threading.Event()
        self.two_running = threading.Event()
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def matches(self, password: str) -> bool:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            if self.running >= 2:
                self.two_running.set()
        self.release.wait(10)
        with self._lock:
            self.running -= 1
        return False

    def decoy(self) -> Gate:
        return self


async def test_at_most_concurrency_hashes_run_at_once_and_a_full_queue_is_busy_not_a_pile() -> None:
    gate = Gate()
    users = UserDirectory({"alice": gate}, concurrency=2, max_waiting=3)
    attempts = [asyncio.create_task(users.authenticate("alice", "x")) for _ in range(5)]
    await asyncio.sleep(0)  # every attempt has taken its place: 2 computing, 3 waiting
    with pytest.raises(SignInBusy):
        await users.authenticate("nobody", "x")
    assert await asyncio.to_thread(gate.two_running.wait, 10)  # both slots busy in worker threads
    gate.release.set()
    assert await asyncio.gather(*attempts) == [None] * 5
    assert gate.most == 2
    assert await users.authenticate("alice", "x") is None  # places are given back
