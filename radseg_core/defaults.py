"""Defaults shared by the node's parameters and the CLIs, kept free of torch so that ``--help`` and the
launch file stay quick."""

# The hit cap (``max_hits``, see ``voxel_map.recency``) of the node and radseg-map; the library's VoxelMap and
# MapperConfig keep none (exact averages, what the evaluation protocols average). Measured
# (benchmarks/max_hits.py, 640x480 at 5 cm, ~13 hits per voxel per frame): a replaced object takes the new
# label in 53 frames (half its voxels) / 172 (95 %) however long the old one was seen (no cap: ~as many
# frames as it was seen), for 0.07 % wrong labels on a noisy static scene (300: 16 / 51 frames, 1.41 %).
DEFAULT_MAX_HITS = 1000
