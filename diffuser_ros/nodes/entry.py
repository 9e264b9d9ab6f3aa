"""The ``main()`` shared by the node executables (the ros2/demos start-up and shutdown idiom)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(args, create: Callable[[], Node], spin: Callable[[Node], None],
             startup_errors: tuple[type[BaseException], ...], logger_name: str) -> None:
    """Init rclpy, create and spin the node, shut down cleanly.

    A ``startup_errors`` exception is logged as one ``cannot start: …`` line (no traceback) and
    the process exits with code 1; Ctrl-C and external shutdown exit normally.
    """
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = create()
        spin(node)
    except startup_errors as exc:
        rclpy.logging.get_logger(logger_name).fatal(f"cannot start: {exc}")
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if code:
        sys.exit(code)
