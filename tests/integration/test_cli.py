"""The `surge` CLI against the shared stack: status, seed (with running owners adopting new SKUs)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.integration

SURGE = str(Path(sys.executable).parent / "surge")


def cli_env(stack, **extra) -> dict[str, str]:
    # a clean shell: nothing inherited from the Ray this test session runs in
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SURGE_", "RAY_")) and k not in ("DATABASE_URL",)}
    env.update(SURGE_DATA_DIR=str(stack.data_dir), SURGE_INVENTORY_SHARDS=str(stack.actors.inventory_shards), **extra)
    return env


def test_status_lists_every_owner_and_the_api_deployment_as_up(stack):
    out = subprocess.run([SURGE, "status"], env=cli_env(stack), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for i in range(stack.actors.inventory_shards):
        assert f"actor inventory-{i}" in out.stdout
    assert "actor relay-0" in out.stdout and "actor notifier-0" in out.stdout
    assert "deployment surge/Api" in out.stdout and "DOWN" not in out.stdout
    hub_row = next(line for line in out.stdout.splitlines() if f"hub {stack.urls.hub}" in line)
    assert "UP" in hub_row and re.search(r"\b\d+ clients", hub_row)  # a count read from the hub's own /metrics


def test_status_reports_a_hub_that_does_not_answer_and_exits_non_zero(stack, tmp_path):
    run = json.loads((stack.data_dir / "run.json").read_text())
    run["hub"] = f"ws://127.0.0.1:{free_port()}"  # the same Surge, but nothing listens where its hub should be
    (tmp_path / "run.json").write_text(json.dumps(run))
    env = {**cli_env(stack), "SURGE_DATA_DIR": str(tmp_path)}
    out = subprocess.run([SURGE, "status"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    hub_row = next(line for line in out.stdout.splitlines() if f"hub {run['hub']}" in line)
    assert "DOWN" in hub_row
    assert "deployment surge/Api" in out.stdout and out.stdout.count("DOWN") == 1  # the rest is up


def test_status_exits_non_zero_when_surge_is_not_running(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SURGE_") and k != "RAY_ADDRESS"}
    out = subprocess.run([SURGE, "status"], env={**env, "SURGE_DATA_DIR": str(tmp_path)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "not running" in out.stderr


async def test_seed_adds_products_with_stock_that_running_owners_adopt(stack, db, api):
    before = await db.fetchval("select count(*) from products")
    last_id = await db.fetchval("select coalesce(max(id), 0) from products")
    out = subprocess.run([SURGE, "seed", "--products", "1500"], env=cli_env(stack), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "seeding products" in out.stdout and "adopted" in out.stdout
    assert await db.fetchval("select count(*) from products") == before + 1500
    # every new variant has a stock row, and the owners serve it without a restart (other tests' admin-made
    # products may have variants without stock: only this seed's are counted)
    missing = await db.fetchval("select count(*) from variants v left join stock_levels s using (sku) "
                                "where s.sku is null and v.product_id > $1", last_id)
    assert missing == 0
    sku, on_hand = await db.fetchrow("select s.sku, s.on_hand from stock_levels s join variants v using (sku) "
                                     "where v.product_id > $1 and s.on_hand > 0 order by s.sku desc limit 1", last_id)
    levels = (await api.get("/inventory/levels", params={"sku": sku})).json()
    assert levels[sku]["available"] == on_hand
    r = await api.post("/inventory/reservations", json={"owner": "cart:seed", "lines": [{"sku": sku, "quantity": 1}]})
    assert r.status_code == 201


def test_migrate_reports_an_up_to_date_schema(stack):
    out = subprocess.run([SURGE, "migrate"], env=cli_env(stack), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "0 migrations applied (up to date)" in out.stdout
