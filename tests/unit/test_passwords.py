"""Password hashing: Argon2id at least at OWASP's minimum, verification, rehash on parameter change."""
from __future__ import annotations

import pytest
from argon2 import extract_parameters
from argon2 import Type

from storage.passwords import PasswordHasher

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


def test_hashes_are_argon2id_at_owasp_minimum_or_above(hasher):
    stored = hasher.hash_sync("correct horse battery staple")
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert params.type is Type.ID
    assert params.memory_cost >= 19_456 and params.time_cost >= 2 and params.parallelism >= 1
    assert params.salt_len >= 16


def test_the_same_password_hashes_differently_each_time(hasher):
    assert hasher.hash_sync("same password") != hasher.hash_sync("same password")


@pytest.mark.parametrize("kwargs", [{"memory_kib": 8192}, {"time_cost": 1}, {"parallelism": 0}])
def test_parameters_below_the_owasp_minimum_are_refused(kwargs):
    with pytest.raises(ValueError):
        PasswordHasher(**kwargs)


def test_verify_accepts_the_password_and_refuses_others(hasher):
    stored = hasher.hash_sync("s3cret-password")
    assert hasher.verify_sync(stored, "s3cret-password").ok
    assert not hasher.verify_sync(stored, "s3cret-passwore").ok
    assert not hasher.verify_sync("not-a-hash", "s3cret-password").ok


def test_an_unknown_account_is_verified_against_a_dummy_hash_and_refused():
    hasher = PasswordHasher()
    seen = []

    class Spy:  # argon2's hasher has slots: wrap it rather than patch it
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def verify(self, stored, password):
            seen.append(stored)
            return self.inner.verify(stored, password)

    hasher._argon = Spy(hasher._argon)
    assert not hasher.verify_sync(None, "surge-dummy-password-for-timing").ok  # even the dummy's own password
    assert len(seen) == 1 and seen[0] == hasher._dummy  # the same Argon2id work as for a real account
    assert hasher.verify_sync(hasher.hash_sync("real-password"), "real-password").ok
    assert len(seen) == 2


def test_a_hash_made_with_older_parameters_is_upgraded_on_successful_verify(hasher):
    old = PasswordHasher(memory_kib=19_456, time_cost=2).hash_sync("pw-to-upgrade")
    stronger = PasswordHasher(memory_kib=19_456, time_cost=3)
    result = stronger.verify_sync(old, "pw-to-upgrade")
    assert result.ok and result.new_hash is not None
    assert extract_parameters(result.new_hash).time_cost == 3
    assert stronger.verify_sync(result.new_hash, "pw-to-upgrade") == type(result)(True, None)
    assert stronger.verify_sync(old, "wrong").new_hash is None


async def test_async_hashing_runs_off_the_event_loop(hasher):
    import threading

    loop_thread = threading.get_ident()
    threads = []
    real = hasher.hash_sync
    hasher.hash_sync = lambda p: threads.append(threading.get_ident()) or real(p)
    try:
        stored = await hasher.hash("async-password")
    finally:
        del hasher.hash_sync
    assert threads and threads[0] != loop_thread
    assert (await hasher.verify(stored, "async-password")).ok
