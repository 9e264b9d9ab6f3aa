"""ament_python package: installable with colcon (ROS 2 workspace) or pip (ROS 2 wheels)."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "diffuser_ros"
HERE = Path(__file__).parent


def tree(src: str, dest: str) -> list[tuple[str, list[str]]]:
    """data_files entries that mirror the folder ``src`` under ``share/diffuser_ros/dest``."""
    entries = []
    if not (HERE / src).is_dir():
        return entries
    for folder in sorted(p for p in (HERE / src).rglob("*") if p.is_dir()) + [HERE / src]:
        files = sorted(str(f.relative_to(HERE)) for f in folder.iterdir() if f.is_file())
        if files:
            rel = folder.relative_to(HERE / src)
            entries.append((str(Path("share", PACKAGE, dest, rel)), files))
    return entries


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["models/*/*.json", "models/*/*.md", "models/*/*/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(str(p.relative_to(HERE))
                                            for p in (HERE / "launch").glob("*.launch.py"))),
        (f"share/{PACKAGE}/config", sorted(str(p.relative_to(HERE))
                                            for p in (HERE / "config").glob("*.yaml"))),
        *tree(f"{PACKAGE}/models", "models"),
    ],
    python_requires=">=3.10",
    install_requires=[
        # torch is pinned by the Makefile (torch==2.13.0, the CPU wheel) before this installs;
        # a ROS/GPU user brings their own build.
        "torch>=2.3",
        "diffusers>=0.30",
        "safetensors",
        "numpy",
        "gymnasium[mujoco]>=1.0",
        "h5py",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "imageio",
        "accelerate>=0.30",
        "setuptools",
    ],
    extras_require={
        # ROS 2 (kilted) as wheels, for machines without a ROS 2 install.
        "ros-wheels": [
            "ros-rclpy", "ros-std-msgs", "ros-sensor-msgs", "ros-std-srvs",
            "ros-rosgraph-msgs", "ros-diagnostic-msgs", "ros-trajectory-msgs", "ros-lifecycle-msgs",
            "ros-geometry-msgs",
            "ros-rmw-fastrtps-cpp",
        ],
        # Behaviour-policy data generation and multi-GPU training only.
        "data": ["stable-baselines3>=2.3"],
        "test": ["pytest<9", "ruff", "hypothesis>=6.100"],
        # The `fast` preset's backend: the guided loop as one graph on a CPU.
        "fast": ["openvino>=2025.0", "onnx>=1.17", "onnxscript>=0.3"],
    },
    zip_safe=False,
    maintainer="diffuser_ros maintainers",
    maintainer_email="maintainers@diffuser-ros.invalid",
    description="Value-guided diffusion planning (Diffuser) as a ROS 2 receding-horizon planner",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "planner_node = diffuser_ros.nodes.planner_node:main",
            "sim_node = diffuser_ros.nodes.sim_node:main",
            "hopper_sim_node = diffuser_ros.nodes.sim_node:hopper_main",
            "diffuser-ros-demo = diffuser_ros.demo:main",
            "diffuser-ros-behaviour = diffuser_ros.data.behaviour:main",
            "diffuser-ros-train = diffuser_ros.training.train:main",
            "diffuser-ros-evaluate = diffuser_ros.evaluation.evaluate:main",
            "diffuser-ros-benchmark = diffuser_ros.benchmark:main",
            "diffuser-ros-tolerance = diffuser_ros.evaluation.tolerance:main",
            "diffuser-ros-commands = diffuser_ros.evaluation.commands:main",
        ],
    },
)
