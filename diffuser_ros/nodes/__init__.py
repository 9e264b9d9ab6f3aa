"""ROS 2 adapters around :mod:`diffuser_ros.planning`.

* :mod:`diffuser_ros.nodes.planner_node` — the managed planner node, a thin adapter around the
  rclpy-free controller core (:mod:`diffuser_ros.control`), which holds every control decision;
* :mod:`diffuser_ros.nodes.sim_node` — the simulator bridge: any gymnasium MuJoCo robot that
  :mod:`diffuser_ros.robots` describes, as a ROS robot.

Beside them: the parameter binding (``parameters``, ``node_settings``), the message builders
(``planner_messages``), the joint-state mapping (``observation``, rclpy-free) and the shared
entry point (``entry``). Importing this package does not import rclpy.
"""
