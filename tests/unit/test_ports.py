"""Ports for servers about to start (cluster.embedded.free_port): loopback sockets only, no servers."""
from __future__ import annotations

import socket

import pytest

from cluster import embedded
from cluster.embedded import PORT_FLOOR, free_port

pytestmark = pytest.mark.unit


def script_draws(monkeypatch, *ports: int) -> None:
    """free_port's random draws, in this order."""
    draws = iter(ports)

    class Scripted:
        def randrange(self, lo, hi):
            return next(draws)
    monkeypatch.setattr(embedded.random, "SystemRandom", Scripted)


def test_ports_come_from_below_the_ephemeral_range_and_never_twice():
    low = embedded._ephemeral_low()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(PORT_FLOOR <= p < low for p in ports)


def test_a_port_something_listens_on_is_passed_over(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        nxt = next(p for p in range(PORT_FLOOR + 7919, PORT_FLOOR + 9000)  # free now, for the second draw
                   if p not in embedded._handed_ports and embedded.port_free("127.0.0.1", p))
        script_draws(monkeypatch, busy, nxt)
        monkeypatch.setattr(embedded, "_ephemeral_low", lambda: 65_536)  # let the held port be drawn
        monkeypatch.setattr(embedded, "_serve_ingress_ranges", lambda: [])  # passed over for being held, only
        assert free_port() == nxt


def test_the_ports_serves_replicas_take_are_never_handed_out(monkeypatch):
    monkeypatch.setenv("RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", str(PORT_FLOOR + 100))
    monkeypatch.setenv("RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT", str(PORT_FLOOR + 199))
    nxt = next(p for p in range(PORT_FLOOR + 8000, PORT_FLOOR + 9000)
               if p not in embedded._handed_ports and embedded.port_free("127.0.0.1", p))
    script_draws(monkeypatch, PORT_FLOOR + 100, PORT_FLOOR + 150, PORT_FLOOR + 199, nxt)  # both ends of Serve's range
    assert free_port() == nxt


def test_the_serve_ranges_default_to_the_installed_serves(monkeypatch):
    from ray.serve._private import constants as serve

    for name in ("MIN_HTTP", "MAX_HTTP", "MIN_GRPC", "MAX_GRPC"):
        monkeypatch.delenv(f"RAY_SERVE_DIRECT_INGRESS_{name}_PORT", raising=False)
    assert embedded._serve_ingress_ranges() == [
        (serve.RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT, serve.RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT),
        (serve.RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT, serve.RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT)]


def test_an_odd_ephemeral_range_falls_back_to_the_kernels_choice(monkeypatch):
    kernels_low = embedded._ephemeral_low()
    monkeypatch.setattr(embedded, "_ephemeral_low", lambda: PORT_FLOOR + 10)
    port = free_port()
    # port 0's answer, from the kernel's real ephemeral range, not a draw from the 10 odd ports
    assert embedded.port_free("127.0.0.1", port) and port >= kernels_low


def test_the_ephemeral_range_is_read_from_the_kernel_or_defaults(tmp_path):
    f = tmp_path / "range"
    f.write_text("40000\t60999\n")
    assert embedded._ephemeral_low(str(f)) == 40000
    assert embedded._ephemeral_low(str(tmp_path / "missing")) == 32_768
