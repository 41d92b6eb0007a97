"""Review by people: the reviewer web app (``guard review serve``) and public verification.

``app`` builds the Starlette application; ``store`` keeps the review index, users and sessions beside the log;
``decisions`` appends reviewer decisions to the log; ``rules`` says which rule fired; ``public`` answers "did you
make this?" for anyone. Only ``app`` and ``web`` import the web stack (the ``review`` extra).
"""
