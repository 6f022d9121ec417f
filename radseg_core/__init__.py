"""radseg_core: RADSeg open-vocabulary segmentation and semantic voxel mapping, free of ROS.

The ROS 2 node in ``radseg_ros`` is a thin shell around this package; everything here runs
from plain Python, the command-line tools and the tests.
"""

__version__ = "0.1.0"
