"""RADIO model loading (hub / HF / local files / injected object) and random-weight replicas."""

from radseg_core.model.loading import LoadedRadio, ModelLoadError, RadioSpec, load_radio

__all__ = ["LoadedRadio", "ModelLoadError", "RadioSpec", "load_radio"]
