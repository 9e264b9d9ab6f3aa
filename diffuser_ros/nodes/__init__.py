"""ROS 2 adapters around :mod:`diffuser_ros.planning`.

* :mod:`diffuser_ros.nodes.planner_node` — receding-horizon diffusion planning node.
* :mod:`diffuser_ros.nodes.hopper_sim_node` — gymnasium Hopper-v5 (MuJoCo) as a ROS robot.

The nodes are thin: the maths lives in ``diffuser_ros.planning``; the rclpy-free helpers here
(:mod:`~diffuser_ros.nodes.observation`; latency statistics live in :mod:`diffuser_ros.latency`)
are unit-testable without a middleware. Importing this package does not import rclpy.
"""
