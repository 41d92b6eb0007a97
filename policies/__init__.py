"""Policies shipped with the toolkit; refer to them by file stem (``default``, ``strict``, ``demo``)."""
