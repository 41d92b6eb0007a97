"""Verification of what the toolkit produced: texts with DSSE envelopes, images with C2PA and the watermark,
and evidence bundles handed to a third party."""
