"""The low shared layer: concepts that detectors/, generators/ and guard/ all need, each defined once.

Errors, file and weights hashing, safe image decoding, device and precision. It imports nothing from the rest of
the project, so every other package may import it without making a cycle.
"""
