"""The Guard pipeline: check prompts, generate, check outputs, decide, mark, sign and log.

``guard.Guard`` is the entry point (``guard.py``, with ``stream.py`` for streamed text); the parts it composes
each have one job:

- ``checker``: runs the policy's detectors (found by name in ``detectors.registry``) over a stage's items and
  returns frozen decisions (also used by ``guard scan`` and ``guard bias-audit``);
- ``recorder``: decides the verdict and builds the complete, frozen provenance record of each attempt;
- ``signals``: what a text record keeps of the text (MinHash sketch, groups mentioned), built from ``detectors/``;
- ``finisher``: watermarks and signs what is handed back;
- ``steps``: the step sequences of a call and of a stream, written once (sans-IO); ``Guard.run`` and
  ``GuardedStream`` drive them in the caller's thread, ``aio`` for async code;
- ``stream``: streamed text, released only once checked.
"""
