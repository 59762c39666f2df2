from datetime import date

import pytest

from actors.domain.cards import luhn_valid, validate_card
from actors.domain.errors import InvalidCard

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 26)


@pytest.mark.parametrize("number", ["4242424242424242", "4000000000000341", "4000002500003155", "4000000000000002",
                                    "378282246310005"])
def test_stripe_test_cards_pass_luhn(number):
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4242424242424241", "1234567812345678", "4242", "", "42424242424242a2"])
def test_bad_numbers_fail_luhn(number):
    assert not luhn_valid(number)


def test_a_valid_card_is_parsed_with_spaces_and_a_two_digit_year():
    card = validate_card("4242 4242 4242 4242", "12/30", "123", TODAY)
    assert (card.number, card.exp_month, card.exp_year, card.cvc, card.last4) == ("4242424242424242", 12, 2030, "123", "4242")


def test_a_card_expiring_this_month_is_still_valid_and_last_month_is_not():
    assert validate_card("4242424242424242", "11/26", "123", TODAY).exp_year == 2026
    with pytest.raises(InvalidCard) as err:
        validate_card("4242424242424242", "10/26", "123", TODAY)
    assert err.value.context["field"] == "card-expiry" and "expired" in err.value.detail


@pytest.mark.parametrize("expiry", ["13/30", "00/30", "1230", "12-30", "", "ab/cd"])
def test_malformed_expiry_is_refused(expiry):
    with pytest.raises(InvalidCard) as err:
        validate_card("4242424242424242", expiry, "123", TODAY)
    assert err.value.context["field"] == "card-expiry"


def test_a_bad_number_is_refused_before_anything_else():
    with pytest.raises(InvalidCard) as err:
        validate_card("4242424242424241", "01/20", "", TODAY)
    assert err.value.context["field"] == "card-number"
    assert err.value.status == 422


@pytest.mark.parametrize("cvc,message", [("", "missing"), ("   ", "missing"), ("12", "3 or 4"), ("12345", "3 or 4"),
                                         ("12a", "3 or 4")])
def test_cvc_must_be_present_and_3_or_4_digits(cvc, message):
    with pytest.raises(InvalidCard) as err:
        validate_card("4242424242424242", "12/30", cvc, TODAY)
    assert err.value.context["field"] == "card-cvc" and message in err.value.detail


def test_a_four_digit_cvc_passes():
    assert validate_card("378282246310005", "12/2030", "1234", TODAY).cvc == "1234"
