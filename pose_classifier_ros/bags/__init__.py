"""Rosbag tools without rclpy: bag I/O (rosbags), offline replay with evaluation, the sample flight bag."""
