"""The launch files under the real launch_ros, as a ROS user runs them: the package is
colcon-built in a workspace whose ``src/`` links this repository, ``install/setup.bash`` is
sourced, and ``ros2 launch diffuser_ros hopper.launch.py`` (and ``walker2d.launch.py``) runs one
short episode.

Needs a ROS 2 installation with ``ros2 launch`` and colcon, whose Python also has the package's
dependencies (torch, diffusers, gymnasium[mujoco], ...):

* ``DIFFUSER_ROS_ROS2CLI=DIR``: the venv that ``.ci/ros2cli-venv DIR`` builds from
  ``../shared/tools/ros2cli`` (``.ci/run`` does); set but unusable, the tests fail;
* otherwise a sourced ROS 2 (``ros2`` and ``colcon`` on PATH, e.g. /opt/ros/<distro>).

Without either the tests are skipped (launch, launch_ros and ros2cli are not on the package index).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from diffuser_ros import demo

REPO = Path(__file__).resolve().parents[1]
ROS2CLI = os.path.abspath(os.environ["DIFFUSER_ROS_ROS2CLI"]) \
    if os.environ.get("DIFFUSER_ROS_ROS2CLI") else ""
HOW_TO_ENABLE = ("build the ROS 2 CLI venv with `.ci/ros2cli-venv DIR` (from "
                 "../shared/tools/ros2cli) and set DIFFUSER_ROS_ROS2CLI=DIR, or source a ROS 2 "
                 "installation with colcon and the package's Python dependencies")
# Imported by the nodes (setup.py install_requires): checked in the ROS 2 Python first, so a
# missing one reads as such rather than as a node that dies at start-up.
NODE_IMPORTS = "rclpy, torch, diffusers, gymnasium, mujoco, h5py, yaml, safetensors"
BUILD_TIMEOUT_S = 300
LAUNCH_TIMEOUT_S = 180
# Launched processes talk DDS on loopback only, in a domain of this test's own (the rest of the
# suite uses $ROS_DOMAIN_ID; domains up to 101 keep Fast DDS's ports below the ephemeral range).
DOMAIN_ID = str(
    next(d for d in range(10 + os.getpid() % 80, 102) if str(d) != os.environ.get("ROS_DOMAIN_ID")))


def _clean_env() -> dict[str, str]:
    """This process's environment without what its ROS wheels' start-up hook added: the hook
    re-executes Python with LD_LIBRARY_PATH set to *this* venv's ROS libraries and a marker that
    stops the hook of the ROS 2 venv from doing the same for its own."""
    env = dict(os.environ)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    prefix = str(Path(sys.prefix).resolve())
    parts = [p for p in env.pop("LD_LIBRARY_PATH", "").split(os.pathsep)
             if p and not str(Path(p).resolve()).startswith(prefix)]
    if parts:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(parts)
    if env.get("VIRTUAL_ENV") and Path(env["VIRTUAL_ENV"]).resolve() == Path(prefix):
        env.pop("VIRTUAL_ENV")
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=DOMAIN_ID,
               PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    return env


def _bash(script: str, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # Never in the repository: MuJoCo writes MUJOCO_LOG.TXT, colcon log/ into the working dir.
    return subprocess.run(["bash", "-c", script], env=_clean_env(), capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or Path(tempfile.gettempdir()))


def _unusable(reason: str):
    if ROS2CLI:
        pytest.fail(f"DIFFUSER_ROS_ROS2CLI={ROS2CLI}: {reason}; `.ci/ros2cli-venv {ROS2CLI}` "
                    "(re)builds it with the package's dependencies")
    pytest.skip(f"{reason}: to run the launch file with `ros2 launch`, {HOW_TO_ENABLE}")


@pytest.fixture(scope="module")
def ros_setup() -> str:
    """Bash lines that put ROS 2 (``ros2``, colcon and their Python) in the environment."""
    if ROS2CLI:
        env_sh = Path(ROS2CLI) / "env.sh"
        if not env_sh.is_file():
            _unusable(f"{env_sh} does not exist")
        setup = f"set +u; source {shlex.quote(str(env_sh))}"
    else:
        setup = "set +u"
    check = _bash(f"{setup}\ncommand -v ros2 >/dev/null || {{ echo 'no ros2 on PATH'; exit 1; }}\n"
                  "command -v colcon >/dev/null || { echo 'no colcon on PATH'; exit 1; }\n"
                  "ros2 launch --help >/dev/null 2>&1 || { echo '`ros2 launch` does not work "
                  "(launch_ros not installed?)'; exit 1; }\n"
                  f"err=$(python3 -c 'import {NODE_IMPORTS}' 2>&1) || {{ echo \"its Python "
                  "lacks a dependency of the nodes: $(echo \"$err\" | tail -1)\"; exit 1; }",
                  timeout=120)
    if check.returncode != 0:
        what = (check.stdout + check.stderr).strip().splitlines()
        _unusable(f"no usable ROS 2 installation ({what[-1] if what else 'check failed'})")
    return setup


@pytest.fixture(scope="module")
def workspace(ros_setup, tmp_path_factory) -> Path:
    """A colcon workspace with the package built (``src/diffuser_ros`` -> this repository)."""
    ws = tmp_path_factory.mktemp("colcon_ws")
    (ws / "src").mkdir()
    (ws / "src" / "diffuser_ros").symlink_to(REPO, target_is_directory=True)
    result = _bash(f"{ros_setup}\nset -e\ncolcon build --event-handlers console_direct-",
                   timeout=BUILD_TIMEOUT_S, cwd=ws)
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout}\n{result.stderr}"
    prefix = ws / "install" / "diffuser_ros"
    for path in ("lib/diffuser_ros/planner_node", "lib/diffuser_ros/sim_node",
                 "lib/diffuser_ros/hopper_sim_node",
                 "share/diffuser_ros/launch/robot.launch.py",
                 "share/diffuser_ros/launch/hopper.launch.py",
                 "share/diffuser_ros/launch/walker2d.launch.py",
                 "share/diffuser_ros/config/hopper.yaml",
                 "share/diffuser_ros/config/walker2d.yaml",
                 "share/ament_index/resource_index/packages/diffuser_ros"):
        assert (prefix / path).exists(), f"colcon build installed no {path}"
    return ws


def ros2_launch(ros_setup: str, ws: Path, *arguments: str, log: Path,
                timeout: float = LAUNCH_TIMEOUT_S,
                launch_file: str = "hopper.launch.py") -> tuple[int, str]:
    """``ros2 launch diffuser_ros LAUNCH_FILE ARGUMENTS`` in its own session (process group),
    output to ``log``. Past ``timeout``: SIGINT to the launch (it stops the nodes), then SIGKILL
    to the group; the test fails. Returns the exit code and the output."""
    script = (f"{ros_setup}\nsource {shlex.quote(str(ws / 'install' / 'setup.bash'))}\n"
              f"exec ros2 launch --noninteractive diffuser_ros {launch_file} "
              f"{' '.join(shlex.quote(a) for a in arguments)}")
    env = {**_clean_env(), "ROS_LOG_DIR": str(log.parent / "ros_log")}
    with open(log, "w") as out:
        process = subprocess.Popen(["bash", "-c", script], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=log.parent, start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            pytest.fail(f"ros2 launch {' '.join(arguments)} still running after {timeout} s; "
                        f"output:\n{log.read_text()[-6000:]}")
        finally:
            # Whatever the launch left behind (nodes of a killed launch) goes with the group.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.killpg(process.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    return code, log.read_text()


@pytest.mark.parametrize("launch_file", ["robot.launch.py", "hopper.launch.py"])
def test_show_args_lists_the_runner_flags(ros_setup, workspace, launch_file):
    result = _bash(f"{ros_setup}\nsource {shlex.quote(str(workspace / 'install/setup.bash'))}\n"
                   f"ros2 launch diffuser_ros {launch_file} --show-args", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = set(re.findall(r"^\s+'(\w+)':", result.stdout, re.MULTILINE))
    # hopper.launch.py includes robot.launch.py: its arguments are all shown (robot included,
    # which hopper.launch.py sets to hopper).
    assert shown == set(demo.LAUNCH_ARGUMENTS), result.stdout


def test_launch_runs_an_episode_and_exits_cleanly(ros_setup, workspace, tiny_model_dir,
                                                  tmp_path):
    code, output = ros2_launch(ros_setup, workspace, "episodes:=1", "device:=cpu",
                               f"model_path:={tiny_model_dir}", log=tmp_path / "launch.log")
    tail = output[-8000:]
    assert "Traceback" not in output, tail
    assert str(tiny_model_dir) in output, f"the planner did not load model_path:\n{tail}"
    # execution's default, resolved by the launch file from mode (lockstep -> hold).
    assert re.search(r"\[planner_node-\d+\].*execution=hold\b", output), tail
    # The simulator's per-episode stats, then its summary (sim_node._end_episode/_finish), from
    # the bridge named hopper_sim_node.
    assert re.search(r"\[hopper_sim_node\]: episode 1: return -?[\d.]+, length \d+", output), \
        tail
    assert re.search(r"\[hopper_sim_node\]: done: 1 episodes", output), tail
    assert code == 0, tail


def test_walker2d_launch_runs_an_episode_on_its_bridge(ros_setup, workspace,
                                                       tiny_walker2d_model_dir, tmp_path):
    code, output = ros2_launch(ros_setup, workspace, "episodes:=1", "device:=cpu",
                               f"model_path:={tiny_walker2d_model_dir}",
                               log=tmp_path / "launch.log", launch_file="walker2d.launch.py")
    tail = output[-8000:]
    assert "Traceback" not in output, tail
    # The planner maps Walker2d's joints onto the Walker2d-shaped model (6 actions, 17 obs).
    assert re.search(r"\[planner_node\]: model .*Walker2d-v5: 17 obs, 6 actions", output), tail
    assert re.search(r"\[walker2d_sim_node\]: episode 1: return -?[\d.]+, length \d+", output), \
        tail
    assert re.search(r"\[walker2d_sim_node\]: done: 1 episodes", output), tail
    assert code == 0, tail


def test_bad_model_path_fails_the_launch_naming_the_path(ros_setup, workspace, tmp_path):
    missing = tmp_path / "no_such_model"
    code, output = ros2_launch(ros_setup, workspace, "episodes:=1", "device:=cpu",
                               f"model_path:={missing}", log=tmp_path / "launch.log")
    tail = output[-8000:]
    assert code != 0, tail
    assert re.search(rf"\[planner_node-\d+\].*{re.escape(str(missing))}", output), tail
    assert re.search(r"planner_node(-\d+)? failed \(exit code 1\)", output), tail
    assert "Traceback" not in output, tail
