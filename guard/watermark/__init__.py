"""Watermarks embedded in outputs (text: at generation time; images: after generation) and their detectors."""
