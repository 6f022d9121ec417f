"""pip install -e .  →  radseg_core (the ROS-free library) and the command-line tools.

The ROS package (node, services) is built by colcon from package.xml / CMakeLists.txt instead;
this file is not used by colcon.
"""

from setuptools import find_packages, setup

setup(
    name="radseg-core",
    version="0.1.0",
    description="RADSeg open-vocabulary segmentation and hit-weighted semantic voxel maps, without ROS",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["radseg_core", "radseg_core.*"]),
    package_data={"radseg_core": ["datasets/class_names/*.txt"]},  # the 2D benchmarks' official prompts
    install_requires=["numpy>=1.24", "torch>=2.1", "pyyaml>=6", "tqdm>=4.60", "einops>=0.7"],
    extras_require={
        "models": ["timm>=1.0.31", "transformers>=4.50", "open_clip_torch>=2.24"],
        "io": ["opencv-python-headless>=4.8", "open3d>=0.18", "rosbags>=0.10", "rosbags-image>=0.10"],
        "sample": ["scikit-image>=0.22"],  # the Middlebury frame behind the sample sequence
        # k-nearest-neighbour voting of radseg-eval on full scenes (torch fallback: slow); scikit-learn's
        # BallTree is RayFronts' own, so ties among equidistant voxels go as there
        "eval": ["scipy>=1.10", "scikit-learn>=1.3"],
        # radseg-export (onnx + torch's exporter onnxscript) and encoder_backend onnxruntime; none pulls torch
        "export": ["onnx>=1.17", "onnxscript>=0.5", "onnxruntime>=1.20"],
        "view": ["rerun-sdk==0.41.0"],  # the browser view (radseg-map --view, node parameter view); pinned
    },
    entry_points={
        "console_scripts": [
            "radseg-map = radseg_core.cli.map:main",
            "radseg-query = radseg_core.cli.query:main",
            "radseg-eval = radseg_core.cli.eval:main",
            "radseg-export = radseg_core.cli.export:main",
        ]
    },
)
