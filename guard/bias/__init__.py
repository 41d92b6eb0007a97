"""Bias audits of generators and of logged outputs.

- ``prompts``: prompt sets (the shipped counterfactual templates, HolisticBias v1.1, BOLD, your own files);
- ``audit``: ``collect`` completions through any ``generate(prompts)`` callable, ``analyse`` them per group with
  fairlearn and bootstrap intervals, flag disparities (``run_audit`` does both);
- ``completions``: every generated completion as JSON lines (``CompletionWriter``), read back for a rescore
  without the generator (``read_completions``, then ``audit.rescore``);
- ``scorer_audit``: the toxicity scorer's false positives on harmless identity sentences;
- ``logged``: ``group_table`` over the provenance log, from the ``record.extra["bias"]`` signals the pipeline
  stores (``guard.pipeline.signals``);
- ``html``: ``render_html_section`` for the audit report. A policy's tolerances are ``guard.policy.BiasPolicy``.
"""
