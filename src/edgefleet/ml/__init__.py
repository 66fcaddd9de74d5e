"""The model factory: datasets, training, quantization, calibration, evaluation, export."""
