"""Helper code for the ROS process tests: a colour-coded test model and publisher/recorder scripts."""
