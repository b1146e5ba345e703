"""The live frame stream: image decoding, message conversion, image/detection pairing, track voting and
the per-frame pipeline shared by the node and the offline replay. Imports no rclpy."""
