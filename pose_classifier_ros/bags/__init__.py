"""Rosbag tools without rclpy: bag I/O (rosbags), a bag's paired frames (BagSource), the output bag's topics and
the sample flight bag. The offline run itself is replay/."""
