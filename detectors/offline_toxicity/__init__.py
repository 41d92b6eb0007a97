"""An offline toxicity scorer from models that registry packages ship: no hub, no network.

- ``packages``: where ``toxic-comment-classifier`` and ``alt-profanity-check`` keep their files, pinned by SHA-256;
- ``bilstm``: their Jigsaw BiLSTM read from Keras files and run in torch; ``lexical``: their linear SVM;
- ``identity``: group words taken out before scoring (the identity-term mitigation);
- ``combiner``: the small JSON model that turns both into one calibrated ``toxicity`` (fitted by
  ``guard toxicity train``; ``data/default.json`` is the shipped one, described in docs/toxicity-offline.md);
- ``scorer``: all of the above on a batch of texts; ``detector``: the ``toxicity-offline`` detector.
"""

from detectors.offline_toxicity.detector import OfflineToxicityDetector

__all__ = ["OfflineToxicityDetector"]
