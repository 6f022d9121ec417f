"""radseg_ros: the ROS 2 shell around radseg_core (node, conversions, services).

The service types generated from ``srv/`` live in ``radseg_ros.srv`` once the package is built.
"""
