"""Offline command-line tools (no ROS): ``radseg-map``, ``radseg-query``, ``radseg-eval``.

Each module has ``main(argv=None) -> int``; see docs/cli.md.
"""
