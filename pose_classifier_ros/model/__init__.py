"""The viewpoint model: DINOv2 backbone, MLP head, checkpoints, crop preprocessing and the classifier.

Imports torch; never imports rclpy or anything from ``bags``, ``navigation`` or ``ros``.
"""
