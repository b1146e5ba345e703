"""Synthetic data for the demo and the tests: a small animal renderer, a drone flight, labelled crops,
and stripe patterns a random backbone already separates (fast training tests).

No animal photos with viewpoint labels ship with any package here. Imports numpy and PIL only
(no torch, no rclpy, nothing from bags/ or ros/).
"""
