"""Code shared by test modules. Tests import shared code from here (ROS-free) or from ros_helpers (ROS
processes), never from another test module or from conftest.py (test_suite_rules.py checks)."""
