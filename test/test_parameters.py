"""One settings mechanism: ``setting()`` declarations give validation, CLI flags, ROS parameters
with descriptors (units included) and the docs tables; the planner node binds its parameters
through one handler."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from diffuser_ros.settings import (
    add_arguments,
    check_fields,
    given_arguments,
    markdown_table,
    setting,
    settings_of,
)


@dataclass(frozen=True)
class Example:
    joints: tuple[str, ...] = setting(("a", "b"), "Joint names.", runtime=False)
    sizes: tuple[int, ...] = setting((8, 16), "Block sizes.")
    period: float = setting(0.5, "Period.", range=(0.01, 10.0), unit="s")
    free: dict = None  # a plain field: not a setting

    def __post_init__(self) -> None:
        check_fields(self)


def test_list_settings_are_checked_item_by_item():
    assert Example(joints=("x",)).joints == ("x",)
    with pytest.raises(ValueError, match="joints must be a list of str"):
        Example(joints=("x", 3))
    with pytest.raises(ValueError, match="joints must be a list of str"):
        Example(joints="ab")
    with pytest.raises(ValueError, match=r"period must be in \[0.01, 10\] s"):
        Example(period=20.0)
    assert [i.name for i in settings_of(Example)] == ["joints", "sizes", "period"]


def test_flags_come_from_the_settings_lists_included():
    parser = argparse.ArgumentParser()
    add_arguments(parser, Example)
    args = parser.parse_args(["--joints", "x,y", "--sizes", "4,8,16"])
    assert given_arguments(args, Example) == {"joints": ("x", "y"), "sizes": (4, 8, 16)}
    with pytest.raises(SystemExit):
        parser.parse_args(["--sizes", "4,x"])
    assert "0.5 s; [0.01, 10]" in parser.format_help()


def test_docs_table_shows_default_unit_range_and_runtime():
    table = markdown_table(settings_of(Example))
    assert '| `joints` | `["a", "b"]` |  |  | read-only | Joint names. |' in table
    assert "| `period` | `0.5` | s | [0.01, 10] | yes | Period. |" in table


def test_training_settings_validate_and_are_the_train_flags():
    from diffuser_ros.training.train import TrainConfig

    with pytest.raises(ValueError, match="batch_size must be in"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="discount must be in"):
        TrainConfig(discount=0.0)
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig, exclude=("model",))
    args = parser.parse_args(["--channels", "8,16,32", "--horizon", "8", "--ema-decay", "0.9"])
    config = TrainConfig(**given_arguments(args, TrainConfig))
    assert config.channels == (8, 16, 32) and config.horizon == 8 and config.ema_decay == 0.9


rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _planner(context, **params):
    from rclpy.parameter import Parameter

    from diffuser_ros.nodes.planner_node import PlannerNode

    return PlannerNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in {"autostart": False, **params}.items()])


def test_descriptors_show_doc_range_choices_unit_and_read_only(context):
    node = _planner(context)
    try:
        names = ["control_period", "n_candidates", "execution", "joint_names", "preset"]
        period, candidates, execution, joints, preset = node.describe_parameters(names)
        assert "unit: s" in period.additional_constraints and not period.read_only
        assert period.floating_point_range[0].to_value == 10.0
        assert candidates.integer_range[0].from_value == 1
        assert "'tracking'" in execution.additional_constraints
        assert joints.read_only and "JointState" in joints.description
        assert not preset.read_only
        assert node.get_parameter("joint_names").value == \
            ["rootx", "rootz", "rooty", "thigh_joint", "leg_joint", "foot_joint"]
    finally:
        node.destroy_node()


def test_bad_start_up_parameters_name_the_parameter(context):
    from diffuser_ros.nodes.parameters import ParameterError

    with pytest.raises(ParameterError, match="joint_names"):
        _planner(context, joint_names=[1, 2])
    with pytest.raises(ParameterError, match="execution must be one of"):
        _planner(context, execution="teleport")
    with pytest.raises(ParameterError, match="qos_depth"):
        _planner(context, qos_depth=0)


def test_runtime_changes_are_validated_by_the_settings_and_a_preset_writes_its_values(context):
    from rclpy.parameter import Parameter

    node = _planner(context, preset="")
    try:
        def set_one(name, value):
            return node.set_parameters([Parameter(name, value=value)])[0]

        assert node.get_parameter("n_candidates").value == 64  # PlannerConfig's default
        assert not set_one("joint_names", ["a"]).successful  # read-only
        result = set_one("warm_start", True)
        assert result.successful  # warm_start_steps 4 <= n_denoise_steps 20
        result = set_one("n_denoise_steps", 2)
        assert not result.successful and "warm_start_steps (4) cannot exceed" in result.reason
        assert set_one("preset", "realtime").successful
        assert node.get_parameter("n_candidates").value == 16
        assert node.get_parameter("n_guide_steps").value == 1
        assert set_one("state_timeout", 2.0).successful
        assert node.get_parameter("state_timeout").value == 2.0
    finally:
        node.destroy_node()
