"""ROS 2 adapters (the only modules that import rclpy)."""
