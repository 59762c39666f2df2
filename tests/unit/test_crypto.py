"""PII encryption at rest: authenticated, bound to its row and field, and rotatable."""
from __future__ import annotations

import pytest

from storage.crypto import DecryptionError, PiiCipher, context_for, generate_key, parse_keys

pytestmark = pytest.mark.unit

OLD = generate_key("k1")
NEW = generate_key("k2")


def test_a_value_round_trips_and_the_stored_form_hides_it():
    cipher = PiiCipher.from_spec(OLD)
    stored = cipher.encrypt("+1 555 0100", "users.phone:abc")
    assert stored.startswith("v1.k1.") and "555" not in stored
    assert cipher.decrypt(stored, "users.phone:abc") == "+1 555 0100"
    assert cipher.encrypt("+1 555 0100", "users.phone:abc") != stored  # a fresh nonce each time
    assert cipher.encrypt(None, "x") is None and cipher.decrypt(None, "x") is None


def test_a_value_moved_to_another_row_or_field_does_not_decrypt():
    cipher = PiiCipher.from_spec(OLD)
    stored = cipher.encrypt("1 Main St", context_for("addresses", "line1_enc", "row-a"))
    with pytest.raises(DecryptionError):
        cipher.decrypt(stored, context_for("addresses", "line1_enc", "row-b"))
    with pytest.raises(DecryptionError):
        cipher.decrypt(stored, context_for("addresses", "city_enc", "row-a"))


def test_a_tampered_value_or_an_unknown_key_does_not_decrypt():
    cipher = PiiCipher.from_spec(OLD)
    stored = cipher.encrypt("secret", "c")
    tampered = stored[:-3] + ("A" if stored[-3] != "A" else "B") + stored[-2:]
    with pytest.raises(DecryptionError):
        cipher.decrypt(tampered, "c")
    with pytest.raises(DecryptionError):
        PiiCipher.from_spec(NEW).decrypt(stored, "c")
    with pytest.raises(DecryptionError):
        cipher.decrypt("plain text", "c")


def test_rotation_the_newest_key_encrypts_old_keys_still_decrypt_and_rotate_moves_values_forward():
    old = PiiCipher.from_spec(OLD)
    stored = old.encrypt("42 Elm Road", "ctx")
    both = PiiCipher.from_spec(f"{NEW},{OLD}")  # newest first
    assert both.decrypt(stored, "ctx") == "42 Elm Road"
    assert both.encrypt("x", "ctx").startswith("v1.k2.")
    rotated = both.rotate(stored, "ctx")
    assert rotated.startswith("v1.k2.") and both.decrypt(rotated, "ctx") == "42 Elm Road"
    assert both.rotate(rotated, "ctx") == rotated  # already under the newest key: unchanged
    # once every value is rotated the old key can go
    assert PiiCipher.from_spec(NEW).decrypt(rotated, "ctx") == "42 Elm Road"


@pytest.mark.parametrize("spec", ["", "nokid", "k1:short", f"{OLD},{OLD}", "bad kid!:" + OLD.split(":")[1]])
def test_malformed_key_lists_are_refused(spec):
    with pytest.raises(ValueError):
        parse_keys(spec)


def test_keys_may_be_given_one_per_line():
    assert [kid for kid, _ in parse_keys(f"{NEW}\n{OLD}\n")] == ["k2", "k1"]
