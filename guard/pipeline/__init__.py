"""The Guard pipeline: check prompts, generate, check outputs, decide, mark, sign and log.

``guard.Guard`` is the entry point; the modules here are its parts.
"""
