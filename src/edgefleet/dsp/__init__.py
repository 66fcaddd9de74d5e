"""Feature extraction as pure numpy functions, shared by training and devices. Imports nothing of edgefleet."""
