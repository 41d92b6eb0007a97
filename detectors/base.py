"""The detector interface: batched ``score`` returning one list of ``Score`` per input, and what a policy can
check before anything runs: the options a detector takes and the labels it can emit."""

from __future__ import annotations

import abc
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Literal

from core.errors import InputError

Modality = Literal["text", "image"]


@dataclass(frozen=True)
class Score:
    """One label's score for one input. ``value`` is in [0, 1]; higher means more of the label."""

    detector: str
    label: str
    value: float
    model: str  # the model that produced it: name plus revision or weights hash, so the score is reproducible
    details: dict[str, Any] = field(default_factory=dict)  # e.g. face boxes, matched work, window count

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "detector": self.detector,
            "label": self.label,
            "value": round(float(self.value), 6),
            "model": self.model,
        }
        if self.details:
            out["details"] = self.details
        return out


class OptionError(InputError):
    """Options that cannot build a detector; ``option`` names the one at fault (None: the options as a whole)."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class Detector(abc.ABC):
    """Scores a batch of inputs of one modality.

    Subclasses set ``name`` (what a policy calls it), ``modalities`` and ``emits`` (every label ``score`` can
    emit; or override ``emitted_labels`` when the options decide), take their options as keyword arguments
    (straight from the policy's ``options:`` mapping), load models lazily, and return one list of scores per
    input, in input order. They raise on failure; the guard applies the policy's ``fail`` setting.
    """

    name: ClassVar[str]
    modalities: ClassVar[frozenset[Modality]] = frozenset({"text"})
    emits: ClassVar[frozenset[str] | None] = None

    @classmethod
    def emitted_labels(cls, options: Mapping[str, Any]) -> frozenset[str] | None:
        """The labels a detector built with ``options`` can emit, found without loading a model; None when that
        cannot be known before the model loads. A policy threshold on any other label would never fire."""
        return cls.emits

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        """Raise (``OptionError``, ``ValueError`` or ``OSError``) when ``options`` cannot build this detector: an
        option ``__init__`` does not take, a required one left out, a value of the wrong type or outside its
        choices. Loads no model. Subclasses extend it with their own checks (model files that must exist)."""
        model = _options_model(cls)
        if model is None:
            return
        from pydantic import ValidationError

        try:
            model.model_validate(dict(options))
        except ValidationError as exc:
            err = exc.errors()[0]
            option = str(err["loc"][0]) if err["loc"] else None
            if err["type"] == "extra_forbidden":
                raise OptionError(f"detector {cls.name} takes no option {option!r} (it takes: "
                                  f"{', '.join(model.model_fields)})", option) from None
            if err["type"] == "missing":
                raise OptionError(f"detector {cls.name} needs the option {option!r}", None) from None
            raise OptionError(f"option {option!r}: {err['msg']}", option) from None


@lru_cache(maxsize=None)
def _options_model(cls: type) -> Any:
    """A pydantic model of ``cls.__init__``'s keyword options (None when its signature cannot be modelled)."""
    from pydantic import ConfigDict, create_model

    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve is only left unchecked
        hints = {}
    fields = {p.name: (hints.get(p.name, Any), ... if p.default is p.empty else p.default)
              for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    extra = "allow" if any(p.kind is p.VAR_KEYWORD for p in params) else "forbid"
    try:
        return create_model(f"{cls.__name__}Options", __config__=ConfigDict(
            extra=extra, arbitrary_types_allowed=True, protected_namespaces=()), **fields)
    except Exception:  # noqa: BLE001 - an option named like a pydantic attribute: no signature check then
        return None

    @property
    @abc.abstractmethod
    def model_id(self) -> str:
        """Name and version or weights hash of what produces the scores."""

    def unavailable(self) -> str | None:
        """Why this detector's model cannot load here, found without loading it (a missing package, an uncached
        checkpoint while downloads are off); None when it should load. Lets a policy check name the scorer
        that will run, and lets a caller switch to a rule's fallback before any work."""
        return None

    @abc.abstractmethod
    def score(self, items: list[Any]) -> list[list[Score]]:
        """Score ``items`` (``str`` for text, ``PIL.Image.Image`` for images)."""
