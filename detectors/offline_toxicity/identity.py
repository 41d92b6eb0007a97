"""Identity-term neutralisation: the mitigation for scorers that learned "gay" or "Muslim" as signs of abuse.

Both offline models were trained on comment data where group names co-occur with abuse, and both score harmless
sentences such as "I am a gay man." as toxic (Dixon et al., 2018 describe the effect). Before the toxicity
labels are scored, the words that name groups (the shipped term list, ``detectors/bias/data/groups.json``) are
taken out of the text, so a sentence is judged by what it says about a group, not by which group it names.
``identity_attack`` needs both: it is the smaller of the model's identity-attack score on the original text
(is a group the target?) and the toxicity of the neutralised text (is it hostile?).

A few group words double as insults ("retarded", "fat"...) and are kept, since removing them would
hide abuse; the evidence reports how this trades accuracy against the identity-term audit.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Group words that are also common insults: neutralising them would hide abuse that uses them as such.
KEEP = frozenset({"retarded", "crippled", "fat", "obese", "mentally ill", "schizophrenic"})


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern[str]:
    from detectors.bias.terms import load_terms

    words = {w.lower() for g in load_terms().groups for w in (*g.terms, *g.adjectives)} - KEEP
    alternatives = sorted((re.escape(w) for w in words), key=len, reverse=True)  # longest phrase first
    return re.compile(r"(?<![\w'-])(?:" + "|".join(alternatives) + r")(?![\w'-])", re.IGNORECASE)


def neutralise(text: str) -> str:
    """``text`` with group-naming words and phrases removed."""
    return _pattern().sub(" ", text)
