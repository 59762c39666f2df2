"""The Api's autoscaling policy counts the replica listener's requests (no Serve is started)."""
from __future__ import annotations

import pytest
from pydantic import ValidationError
from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy
from ray.serve.config import AutoscalingConfig, AutoscalingContext

from serve_app.app import api_options
from serve_app.autoscaling import LISTENER_ONGOING, POLICY, listener_aware_policy
from serve_app.settings import ServeSettings

pytestmark = pytest.mark.unit


def context(replicas: int, serve_requests: float, listener: dict[str, float] | None, target: float = 2) -> AutoscalingContext:
    config = AutoscalingConfig(min_replicas=1, max_replicas=8, target_ongoing_requests=target,
                               policy={"policy_function": POLICY})
    return AutoscalingContext(
        deployment_id="Api", deployment_name="Api", app_name="surge", current_num_replicas=replicas,
        target_num_replicas=replicas, running_replicas=[f"r{i}" for i in range(replicas)],
        total_num_requests=serve_requests, total_queued_requests=0,
        aggregated_metrics={LISTENER_ONGOING: listener} if listener is not None else {}, raw_metrics={},
        capacity_adjusted_min_replicas=1, capacity_adjusted_max_replicas=8, policy_state={},
        last_scale_up_time=None, last_scale_down_time=None, current_time=0.0, config=config)


def test_a_replica_busy_only_with_the_listener_is_scaled_out_where_serves_policy_sees_it_idle():
    ctx = context(replicas=2, serve_requests=0, listener={"r0": 30.0, "r1": 34.0})
    assert replica_queue_length_autoscaling_policy(ctx)[0] == 0  # the gap: Serve alone would scale in
    assert listener_aware_policy(ctx)[0] == 32  # 64 in flight / 2 per replica (Serve bounds it by max_replicas)


def test_both_doors_add_up_and_without_a_listener_it_is_serves_rule():
    assert listener_aware_policy(context(2, serve_requests=6, listener={"r0": 1.0, "r1": 1.0}))[0] == 4
    plain = context(3, serve_requests=9, listener=None)
    assert listener_aware_policy(plain)[0] == replica_queue_length_autoscaling_policy(plain)[0] == 4.5


def test_the_policy_path_resolves_to_the_function_serve_will_call():
    policy = AutoscalingConfig(policy={"policy_function": POLICY}).policy.get_policy()  # Serve's own (un)pickled copy
    assert policy.__module__ == "serve_app.autoscaling" and policy.__name__ == "listener_aware_policy"
    assert policy(context(2, serve_requests=0, listener={"r0": 5.0, "r1": 3.0}))[0] == 4


def test_autoscaling_settings_replace_the_fixed_replica_count(monkeypatch):
    monkeypatch.setenv("SURGE_API_AUTOSCALING", '{"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 64}')
    options = api_options(ServeSettings(api_replicas=3))
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {"policy": {"policy_function": POLICY}, "min_replicas": 1,
                                             "max_replicas": 4, "target_ongoing_requests": 64}
    own = {"max_replicas": 2, "policy": {"policy_function": "ray.serve.autoscaling_policy:default_autoscaling_policy"}}
    assert api_options(ServeSettings(api_autoscaling=own))["autoscaling_config"]["policy"] == own["policy"]
    monkeypatch.delenv("SURGE_API_AUTOSCALING")
    assert api_options(ServeSettings(api_replicas=3))["num_replicas"] == 3


@pytest.mark.parametrize("bad", [{"min_replicas": 3, "max_replicas": 1}, {"max_replica": 4}])
def test_a_bad_autoscaling_setting_fails_at_start_up(bad):
    with pytest.raises(ValidationError):
        ServeSettings(api_autoscaling=bad)


def test_the_api_cannot_scale_to_zero_while_the_replica_listener_is_its_front_door():
    with pytest.raises(ValidationError, match="min_replicas"):
        ServeSettings(replica_port=18600, api_autoscaling={"min_replicas": 0, "max_replicas": 2})
    assert ServeSettings(api_autoscaling={"min_replicas": 0, "max_replicas": 2}).api_autoscaling["min_replicas"] == 0
