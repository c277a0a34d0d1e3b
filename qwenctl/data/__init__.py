"""Data files: the Qwen2.5 catalog, quant formats and the calibration of the estimate model."""
