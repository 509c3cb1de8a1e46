"""napari-sperm: find and outline sperm cells in microscopy images."""

__version__ = "0.1.0"
