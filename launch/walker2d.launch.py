"""Walker2d demo: ``launch/robot.launch.py`` with ``robot:=walker2d`` (``config/walker2d.yaml``).

    ros2 launch diffuser_ros walker2d.launch.py mode:=realtime episodes:=3

Every other argument of robot.launch.py applies (``ros2 launch diffuser_ros walker2d.launch.py
--show-args``).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import IncludeLaunchDescription
from launch.launch_description import LaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

ROBOT = "walker2d"


def generate_launch_description():
    robot_launch = os.path.join(get_package_share_directory("diffuser_ros"), "launch",
                                "robot.launch.py")
    return LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(robot_launch), launch_arguments={"robot": ROBOT}.items())])
