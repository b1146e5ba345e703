"""Side-profile navigation: the ROS-free policy and its evaluation over recorded viewpoints."""
