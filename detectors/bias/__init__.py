"""Per-output bias signals: which demographic groups a text mentions (``mentions``), from term lists over ten
axes (``terms``), and how negatively it regards them (``regard``). The ``bias`` detector combines them."""

from detectors.bias.mentions import Mention, MentionFinder, find_mentions
from detectors.bias.regard import Regard, RegardScorer, TransformersRegard, VaderRegard, regard_scorer
from detectors.bias.terms import AXES, Group, TermList, load_terms

__all__ = [
    "AXES",
    "Group",
    "Mention",
    "MentionFinder",
    "Regard",
    "RegardScorer",
    "TermList",
    "TransformersRegard",
    "VaderRegard",
    "find_mentions",
    "load_terms",
    "regard_scorer",
]
