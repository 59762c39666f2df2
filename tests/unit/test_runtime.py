"""Process tuning every Surge server applies at start."""
import gc

import pytest

from actors.settings import ActorSettings
from realtime.settings import HubSettings
from storage.runtime import tune_gc

pytestmark = pytest.mark.unit


@pytest.fixture
def restore_gc():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_tune_gc_raises_only_the_young_generations_threshold(restore_gc):
    gc.set_threshold(700, 11, 12)
    tune_gc(10_000)
    assert gc.get_threshold() == (10_000, 11, 12)


def test_zero_keeps_what_python_has(restore_gc):
    gc.set_threshold(700, 10, 10)
    tune_gc(0)
    assert gc.get_threshold() == (700, 10, 10)


def test_servers_default_to_the_measured_threshold_and_one_variable_changes_all(monkeypatch):
    assert ActorSettings().gc_gen0_threshold == HubSettings().gc_gen0_threshold == 10_000
    monkeypatch.setenv("SURGE_GC_GEN0_THRESHOLD", "0")
    assert ActorSettings().gc_gen0_threshold == HubSettings().gc_gen0_threshold == 0
