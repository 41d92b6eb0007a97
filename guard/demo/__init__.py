"""``guard demo``: the end-to-end run a newcomer sees, and the tiny offline models it and the tests use."""
