"""Which address per-address rate limits count: the peer, or the hop trusted proxies appended."""
from __future__ import annotations

import pytest

from serve_app.ratelimit import account_key, address_from
from serve_app.settings import ServeSettings

pytestmark = pytest.mark.unit


def test_without_trusted_proxies_the_peer_counts_and_forwarded_for_is_ignored():
    assert address_from("203.0.113.9", ["10.0.0.1"], 0) == "203.0.113.9"


def test_behind_one_proxy_the_address_it_appended_counts_not_what_the_client_wrote():
    # the client wrote "1.2.3.4" itself; HAProxy appended the real source 198.51.100.7
    assert address_from("127.0.0.1", ["1.2.3.4, 198.51.100.7"], 1) == "198.51.100.7"
    assert address_from("127.0.0.1", ["1.2.3.4", "198.51.100.7"], 1) == "198.51.100.7"  # repeated headers


def test_behind_two_proxies_the_second_from_the_right_counts():
    assert address_from("127.0.0.1", ["spoofed, 198.51.100.7, 10.0.0.2"], 2) == "198.51.100.7"


def test_a_request_that_did_not_come_through_the_proxies_falls_back_to_the_peer():
    assert address_from("192.0.2.1", [], 1) == "192.0.2.1"


def test_serves_haproxy_ingress_means_one_hop_unless_configured():
    assert ServeSettings(ingress="haproxy").client_hops == 1
    assert ServeSettings(ingress="direct").client_hops == 0
    assert ServeSettings(ingress="haproxy", forwarded_hops=2).client_hops == 2


def test_account_keys_do_not_carry_the_email():
    key = account_key("Someone@Example.com ")
    assert "someone" not in key and key == account_key("someone@example.com")
