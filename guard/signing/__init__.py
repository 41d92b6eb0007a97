"""Signatures that travel with outputs: DSSE envelopes for text, C2PA manifests for images."""
