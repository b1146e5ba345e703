"""Field footage without ROS: video decoding (PyAV), track files (CVAT for video 1.1, MOTChallenge, the
package's detections CSV), ground truth from track attributes, and writers for tests and sample data."""
