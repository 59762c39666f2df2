# Surge: `make up` runs everything on this machine; `make test` installs what is needed and tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install up test test-unit test-slow bench bench-flash bench-owner bench-realtime bench-hub-pass bench-hub-gc bench-checkout bench-search clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

up: install
	$(VENV)/bin/surge up

# Everything but the full-size slow suites (their bounded forms run here). Lifecycle tests first.
test: install
	$(VENV)/bin/pytest -m "not slow" $(PYTEST_ARGS)

test-unit: install
	$(VENV)/bin/pytest -m unit $(PYTEST_ARGS)

test-slow: install
	$(VENV)/bin/pytest -m slow $(PYTEST_ARGS)

bench: install
	$(PY) -m loadtests.bench_trivial

# Surge with one API replica per core (the measured best on 2 cores) vs the one-UPDATE baseline;
# 20,000 units a round, so the selling phase lasts ~13 s instead of ~3 s and a round's rate is steadier
bench-flash: install
	$(PY) -m loadtests.bench_flash --surge-env SURGE_API_REPLICAS=2 --stock 20000 --run-time 25

bench-owner: install
	$(PY) -m loadtests.bench_owner

bench-realtime: install
	$(PY) -m loadtests.bench_realtime --clients 1000 5000 10000 --hub-impl queued direct raw-whole raw

# one hub's fan-out pass alone (no Surge) against bare writes to the same 10,000 sockets
bench-hub-pass: install
	$(PY) -m loadtests.bench_hub_pass

# one hub's GC pauses through a 10,000-socket connect storm and churn, its heap frozen vs CPython's own policy
bench-hub-gc: install
	$(PY) -m loadtests.bench_hub_gc

# cart -> paid through the HTTP API, at a light and a heavy load, on the embedded localstripe and on one
# with its persistence off (4242 cards; the webhook's arrival is measured from stripe_events;
# --three-ds-share N makes the webhook mark orders paid)
bench-checkout: install
	$(PY) -m loadtests.bench_checkout --users 4 --users 16 --localstripe embedded --localstripe memory

# search over 100,000 seeded products through the API: p50/p95/p99 cold (cache missed) and warm
bench-search: install
	$(PY) -m loadtests.bench_search --products 100000 --compare 400

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
