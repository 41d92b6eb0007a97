"""Which demographic groups a text mentions.

The text is split into words (letters, digits, apostrophes, a trailing ``+`` as in "LGBTQ+"), and runs of up
to the longest term's length are looked up in a table, longest first, so "African American" wins over
"American". Words of a multiword term may be joined by spaces or hyphens only ("Asian-American" matches "Asian
American"; "Asian, American" does not). Ambiguous adjectives count only before a person noun, possibly through
a chain of other such adjectives ("old white man" names age and race; "black car" names nothing). Matching is
case-insensitive. A dictionary walk over words is about twenty times faster than one regular expression with
hundreds of alternatives, which matters when every logged output is scanned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from core.errors import InputError
from detectors.bias.terms import Group, TermList, load_terms

_WORD = re.compile(r"[\w']+\+?")
_JOINERS = " \t\n\r-"


@dataclass(frozen=True)
class Mention:
    """One group named at ``text[start:end]``."""

    group: Group
    term: str  # as written in the text
    start: int
    end: int


def _key(phrase: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in _WORD.findall(phrase))


class MentionFinder:
    """Finds group mentions using one term list; build once and reuse."""

    def __init__(self, terms: TermList | None = None) -> None:
        self.terms = terms or load_terms()
        self._by_term: dict[tuple[str, ...], list[Group]] = {}
        self._by_adjective: dict[str, list[Group]] = {}
        for group in self.terms.groups:
            for term in group.terms:
                self._by_term.setdefault(_key(term), []).append(group)
            for adjective in group.adjectives:
                words = _key(adjective)
                if len(words) != 1:
                    raise InputError(f"{self.terms.source}: {group.id}: adjective {adjective!r} must be one word")
                self._by_adjective.setdefault(words[0], []).append(group)
        self._nouns = {_key(n)[0] for n in self.terms.person_nouns if _key(n)}
        self._longest = max((len(k) for k in self._by_term), default=1)
        self._first_words = {k[0] for k in self._by_term if k}  # most words start no term: one lookup rules them out

    def find(self, text: str) -> list[Mention]:
        """Every mention, in text order; a word that names groups on two axes yields one mention per group."""
        spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        words = [text[s:e].lower() for s, e in spans]
        # joined[i]: words i and i+1 are separated by spaces or hyphens only, so they may form one phrase
        joined = [not text[a_end:b_start].strip(_JOINERS) for (_, a_end), (b_start, _) in zip(spans, spans[1:])]
        joined.append(False)
        found: list[Mention] = []
        i = 0
        while i < len(words):
            size = self._term_at(words, joined, i)
            if size:
                start, end = spans[i][0], spans[i + size - 1][1]
                found.extend(Mention(g, text[start:end], start, end) for g in self._by_term[tuple(words[i : i + size])])
            if words[i] in self._by_adjective and self._before_noun(words, joined, i):
                covered = {m.group.id for m in found if m.start <= spans[i][0] < m.end}
                found.extend(Mention(g, text[spans[i][0] : spans[i][1]], *spans[i])
                             for g in self._by_adjective[words[i]] if g.id not in covered)
            i += size or 1
        return found

    def _term_at(self, words: list[str], joined: list[bool], i: int) -> int:
        """Length in words of the longest term starting at word ``i``, or 0."""
        if words[i] not in self._first_words:
            return 0
        size = 1
        while size < self._longest and i + size < len(words) and joined[i + size - 1]:
            size += 1
        for n in range(size, 0, -1):
            if tuple(words[i : i + n]) in self._by_term:
                return n
        return 0

    def _before_noun(self, words: list[str], joined: list[bool], i: int) -> bool:
        j = i + 1
        while j < len(words) and joined[j - 1]:
            if words[j] in self._nouns:
                return True
            if words[j] not in self._by_adjective:
                return False
            j += 1
        return False

    def groups(self, text: str) -> list[Group]:
        """The distinct groups a text mentions, in order of first mention."""
        return list({m.group.id: m.group for m in self.find(text)}.values())


@lru_cache(maxsize=1)
def default_finder() -> MentionFinder:
    return MentionFinder()


def find_mentions(text: str) -> list[Mention]:
    """Mentions of the shipped groups in ``text``."""
    return default_finder().find(text)
