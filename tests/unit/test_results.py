"""The one results shape every benchmark writes (loadtests/results.py)."""
import json
import re

import pytest

from loadtests.results import write_results

pytestmark = pytest.mark.unit

RUN = {"system": "surge", "req_per_s": 10.0, "p50_ms": 1.0, "p99_ms": 2.0}


def test_every_results_file_says_which_code_it_measured(tmp_path):
    doc = json.loads(write_results("demo", [RUN], {"ratio": 1.0}, command="make demo", results_dir=tmp_path).read_text())
    assert doc["bench"] == "demo" and doc["command"] == "make demo" and doc["runs"] == [RUN]
    assert re.fullmatch(r"[0-9a-f]{40}", doc["code"]["head"]) and isinstance(doc["code"]["changed"], list)


def test_a_bench_can_pass_the_code_it_saw_before_its_runs(tmp_path):
    before = {"head": "0" * 40, "changed": ["actors/inventory_shard.py"]}
    doc = json.loads(write_results("demo", [RUN], {}, results_dir=tmp_path, code=before).read_text())
    assert doc["code"] == before


def test_a_run_without_the_required_figures_is_refused(tmp_path):
    with pytest.raises(ValueError, match="p99_ms"):
        write_results("demo", [{"system": "surge", "req_per_s": 1, "p50_ms": 1}], {}, results_dir=tmp_path)
    assert not list(tmp_path.iterdir())
