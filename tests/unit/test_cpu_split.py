import pytest

from loadtests.cpu_split import kind, split

pytestmark = pytest.mark.unit


def test_ray_workers_count_by_actor_class_and_the_rest_by_executable():
    assert kind(["ray::InventoryShard.reserve_many"], "python") == "ray::InventoryShard"
    assert kind(["ray::ServeReplica:surge:Api"], "python") == "ray::ServeReplica:surge:Api"
    assert kind(["/usr/lib/postgresql/bin/postgres", "-D", "/data", "-p", "5432"], "postgres") == "postgres -D /data"


def test_the_split_adds_up_per_kind_and_counts_a_newborn_process_from_zero():
    before = {1: ("ray::InventoryShard", 10.0), 2: ("postgres", 3.0), 3: ("postgres", 1.0)}
    after = {1: ("ray::InventoryShard", 12.5), 2: ("postgres", 3.5), 3: ("postgres", 1.25), 4: ("postgres", 0.25)}
    assert split(before, after) == {"ray::InventoryShard": 2.5, "postgres": 1.0}
