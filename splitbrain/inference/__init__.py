"""Using a trained network on the user's own files: colorizing photographs at full resolution,
extracting features of a data source to disk, exporting ONNX graphs. See docs/USE.md."""

from .colorize_files import ColorizeSettings, colorize_files
from .extract_files import FeatureWriter, extract_to_file
from .onnx import export_onnx

__all__ = ["ColorizeSettings", "FeatureWriter", "colorize_files", "export_onnx", "extract_to_file"]
