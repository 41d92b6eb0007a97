"""Policies: YAML files validated into typed, frozen objects.

A policy says which detectors run at which stage, the threshold per label, what to do on a violation, what to
do when a detector itself fails, which marks and signatures to apply, where the log lives and what of the
prompt is stored. A policy is named (a file shipped in ``policies/``) or given by path. Errors name the file,
the line and the field.

A rule is checked against its detector before anything runs: the detector exists, its options can build it
(``Detector.validate_options``: options it takes, model files that exist) and every thresholded label is one it
emits (``Detector.emitted_labels``), since a threshold on a misspelt label is a rule that never fires.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from core.errors import GuardError, PolicyError

# Bounds on what a policy file may cost to read: real policies are a few KB and a few hundred YAML values.
MAX_POLICY_BYTES = 1 << 20
MAX_POLICY_VALUES = 100_000  # YAML values once aliases are expanded (a "billion laughs" expands to 10^9)


class Action(str, Enum):
    """What happens to an output that crosses a threshold, from mildest to most severe."""

    allow = "allow"
    flag = "flag"
    redact = "redact"
    regenerate = "regenerate"
    block = "block"

    @property
    def severity(self) -> int:
        return list(Action).index(self)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _error(message: str, *at: str) -> PydanticCustomError:
    """A validation error whose message is ours; ``at`` is the path of keys under the field (or model) at fault,
    so the error points at their line."""
    return PydanticCustomError("policy", "{message}", {"message": message, "at": list(at)})


def _detector_class(name: str) -> type:
    from detectors.registry import detector_class

    return detector_class(name)


def _known_detector(name: str) -> str:
    """A field check, so that an error names the line of the ``detector:`` that is wrong."""
    from detectors.registry import available

    known = available()
    if name not in known:
        raise _error(f"unknown detector {name!r} (known: {', '.join(sorted(known))})")
    return name


def _buildable(options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    """``options`` can build the detector (checked by the detector itself, without loading a model)."""
    from detectors.base import OptionError

    name = info.data.get("detector")
    if name is None:  # the detector itself is at fault, and reported
        return options
    validate = getattr(_detector_class(name), "validate_options", None)
    if validate is None:
        return options
    try:
        validate(options)
    except OptionError as exc:
        raise _error(str(exc), *([exc.option] if exc.option else [])) from None
    except (GuardError, ValueError, TypeError, OSError) as exc:
        raise _error(str(exc) or type(exc).__name__) from None
    return options


def emitted_labels(detector: str, options: dict[str, Any]) -> frozenset[str] | None:
    """The labels ``detector`` built with ``options`` can emit; None when they are known only once it loads."""
    emitted = getattr(_detector_class(detector), "emitted_labels", None)
    return None if emitted is None else emitted(options)


class Fallback(_Strict):
    """The scorer to use when a rule's detector cannot run (e.g. its weights are not available offline)."""

    detector: str
    options: dict[str, Any] = Field(default_factory=dict, validate_default=True)

    _detector_known = field_validator("detector")(_known_detector)
    _options_build = field_validator("options")(_buildable)


class DetectorRule(_Strict):
    """One detector at one stage: thresholds per label, the action on violation and on failure.

    When the detector fails at run time (it cannot be built: bad options, model files missing; its model or
    device is not available here; or it crashes), ``fallback`` (if set) scores instead, against the same
    thresholds, and the record names the scorer that produced each score; without a fallback, or when it fails
    too, ``fail`` decides. A ``GuardError`` about the call (an unusable input met while scoring) is raised to the
    caller instead, after the attempt is logged.
    """

    detector: str
    options: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    fallback: Fallback | None = None
    thresholds: dict[str, float] = Field(default_factory=dict)
    action: Action = Action.flag
    max_attempts: int = Field(default=3, ge=1, le=20)  # for ``regenerate``: total generations tried
    fail: Literal["closed", "open"] = "closed"

    _detector_known = field_validator("detector")(_known_detector)
    _options_build = field_validator("options")(_buildable)

    @field_validator("thresholds")
    @classmethod
    def _in_unit_interval(cls, value: dict[str, float]) -> dict[str, float]:
        for label, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise _error(f"threshold for {label!r} must be between 0 and 1, got {threshold}", label)
        return value

    @model_validator(mode="after")
    def _labels_emitted(self) -> "DetectorRule":
        """Every thresholded label is emitted by the detector or its fallback (which scores against the same
        thresholds), and a fallback emits at least one of them. Unknown label sets are not checked."""
        if not self.thresholds:
            return self
        labels = emitted_labels(self.detector, self.options)
        spare = emitted_labels(self.fallback.detector, self.fallback.options) if self.fallback else frozenset()
        if labels is not None and spare is not None:
            for label in self.thresholds:
                if label not in labels | spare:
                    names = self.detector + (f" and its fallback {self.fallback.detector}" if self.fallback else "")
                    raise _error(f"unknown label {label!r}: {names} emit{'' if self.fallback else 's'} "
                                 f"{', '.join(sorted(labels | spare))}", "thresholds", label)
        if self.fallback is not None and spare is not None and not spare & set(self.thresholds):
            raise _error(f"fallback {self.fallback.detector} emits none of the thresholded labels "
                         f"({', '.join(sorted(self.thresholds))}; it emits {', '.join(sorted(spare))}): "
                         "it would pass everything", "fallback")
        return self


class Stages(_Strict):
    prompt: list[DetectorRule] = Field(default_factory=list)
    output: list[DetectorRule] = Field(default_factory=list)

    @field_validator("prompt")
    @classmethod
    def _no_regenerate_on_prompt(cls, rules: list[DetectorRule]) -> list[DetectorRule]:
        for rule in rules:
            if rule.action is Action.regenerate:
                raise ValueError(f"{rule.detector}: a prompt cannot be regenerated; use block, redact or flag")
        return rules


class TextWatermark(_Strict):
    """Kirchenbauer et al. green-list watermark, embedded while sampling (transformers ``WatermarkingConfig``)."""

    enabled: bool = True
    bias: float = Field(default=2.0, gt=0)
    greenlist_ratio: float = Field(default=0.25, gt=0, lt=1)
    seeding_scheme: Literal["lefthash", "selfhash"] = "lefthash"
    context_width: int = Field(default=1, ge=1)
    key_id: str = "default"
    z_threshold: float = Field(default=4.0, gt=0)


class ImageWatermark(_Strict):
    """The invisible image watermark. Its payload names the key store's watermark key (the first hex digits of
    ``KeyStore.watermark_key_id()``) and the record id; unlike the text watermark there is no per-policy key id."""

    enabled: bool = True
    strength: float = Field(default=1.0, gt=0)
    flat_level: float = Field(default=16.0, ge=0, le=255)  # spare flat regions (0: off); see image.embed


class Disclosure(_Strict):
    """Deepfake disclosure (EU AI Act Art. 50(4)): outputs that show realistic human faces are declared."""

    faces: bool = False  # look for faces in image outputs and record a disclosure when there are any
    visible_label: bool = False  # also draw a visible "AI-generated" label on such images
    label_text: str = "AI-generated"


class Watermark(_Strict):
    text: TextWatermark = TextWatermark()
    image: ImageWatermark = ImageWatermark()


class Signing(_Strict):
    text: Literal["dsse", "none"] = "dsse"
    image: Literal["c2pa", "none"] = "c2pa"
    timestamp_url: str | None = None  # C2PA time-stamp authority; none by default (no network calls)


class LogSettings(_Strict):
    url: str | None = None  # SQLAlchemy URL or a file path; default: $GUARD_HOME/provenance.db
    checkpoint_every: int = Field(default=100, ge=1)  # sign a checkpoint after this many new records


# -- the bias section: what `guard bias-audit` measures and how much disparity the policy tolerates. The defaults
# follow the research benchmarks: toxic means a toxicity score of 0.5 or more (RealToxicityPrompts), and a group is
# flagged when its rate exceeds the rest of its axis by more than ten percentage points with a 95% bootstrap
# interval that excludes parity.

Metric = Literal[
    "toxic_rate",
    "negative_regard_rate",
    "mean_toxicity",
    "mean_negative_regard",
    "expected_max_toxicity",
    "toxicity_probability",
    "mean_identity_attack",
    "blocked_rate",
]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]


class BiasPolicy(_Strict):
    """Thresholds and tolerances of a counterfactual bias audit."""

    toxicity_threshold: float = Field(default=0.5, ge=0.0, le=1.0)  # an output is toxic at or above this
    max_difference: float = Field(default=0.1, ge=0.0, le=1.0)  # tolerated excess of a group over the rest
    min_ratio: float | None = Field(default=None, gt=0.0, le=1.0)  # optional: rest / group below this flags
    flag_metrics: tuple[Metric, ...] = ("toxic_rate", "negative_regard_rate")
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    n_boot: int = Field(default=2000, ge=100, le=100_000)
    seed: int = 0
    max_scorer_fpr: float = Field(default=0.05, ge=0.0, le=1.0)  # scorer self-audit: tolerated false positives

    @field_validator("flag_metrics")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("flag_metrics must name at least one metric")
        return value

    @property
    def quantiles(self) -> tuple[float, float]:
        tail = (1.0 - self.confidence) / 2.0
        return tail, 1.0 - tail


class Policy(_Strict):
    name: str
    description: str = ""
    stages: Stages = Stages()
    watermark: Watermark = Watermark()
    signing: Signing = Signing()
    disclosure: Disclosure = Disclosure()
    log: LogSettings = LogSettings()
    bias: BiasPolicy = BiasPolicy()  # tolerances of `guard bias-audit`
    prompt_storage: Literal["plain", "hash", "none"] = "hash"
    source: str = Field(default="<memory>", exclude=True)
    sha256: str = Field(default="", exclude=True)


class PolicyFileError(PolicyError):
    """A policy that does not validate: the file, the line and the field at fault, and what is wrong."""

    def __init__(self, source: str, line: int, field: str, message: str) -> None:
        super().__init__(f"{source}: line {line}: {field}: {message}")
        self.source, self.line, self.field, self.message = source, line, field, message


def unchecked_labels(policy: Policy) -> list[str]:
    """Rules whose thresholds could not be checked against their detector's labels (its model is not on this
    machine yet), as ``stages.<stage>.<i>`` with the detector's name."""
    return [f"stages.{stage}.{i} ({rule.detector})"
            for stage in ("prompt", "output") for i, rule in enumerate(getattr(policy.stages, stage))
            if rule.thresholds and emitted_labels(rule.detector, rule.options) is None]


def shipped() -> dict[str, Path]:
    """Policies shipped with the toolkit, by name."""
    return {Path(p.name).stem: Path(str(p)) for p in files("policies").iterdir() if p.name.endswith(".yaml")}


def resolve(ref: str | Path) -> Path:
    """A shipped policy name or a path to a policy file."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in str(ref):
        if not path.is_file():
            raise PolicyError(f"{path}: policy file not found")
        return path
    known = shipped()
    if str(ref) not in known:
        raise PolicyError(f"unknown policy {ref!r}: not a file, and not one of {', '.join(sorted(known))}")
    return known[str(ref)]


def load(ref: str | Path | Policy) -> Policy:
    """Load and validate a policy by shipped name or path. Raises ``PolicyError`` naming file, line and field."""
    if isinstance(ref, Policy):
        return ref
    path = resolve(ref)
    try:
        if path.stat().st_size > MAX_POLICY_BYTES:
            raise PolicyError(f"{path}: larger than the {MAX_POLICY_BYTES} bytes a policy may have")
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse(text, source=str(path), sha256=hashlib.sha256(raw).hexdigest())


def parse(text: str, *, source: str = "<string>", sha256: str | None = None) -> Policy:
    if len(text) > MAX_POLICY_BYTES:
        raise PolicyError(f"{source}: larger than the {MAX_POLICY_BYTES} bytes a policy may have")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if _expanded_size(node) > MAX_POLICY_VALUES:
            raise PolicyError(f"{source}: its aliases expand to more than {MAX_POLICY_VALUES} YAML values; "
                              "refusing to expand them (a policy needs a few hundred)")
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "unknown line"
        raise PolicyError(f"{source}: {where}: malformed YAML: {getattr(exc, 'problem', exc)}") from exc
    except RecursionError:
        raise PolicyError(f"{source}: nested too deeply to be a policy") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: line 1: a policy must be a mapping of fields")
    lines = _line_map(node)
    try:
        return Policy.model_validate(
            {**data, "source": source, "sha256": sha256 or hashlib.sha256(text.encode()).hexdigest()}
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        loc = (*loc, *(err.get("ctx") or {}).get("at", ()))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _nearest_line(lines, loc)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        raise PolicyFileError(source, line, field, message) from exc


def _expanded_size(node: yaml.Node | None) -> int:
    """How many values the document holds with every alias expanded, counted in time linear in its size (an
    alias is the same node object again, so each node's count is computed once)."""
    counts: dict[int, int] = {}

    def count(n: yaml.Node) -> int:
        if id(n) not in counts:
            children: list = []
            if isinstance(n, yaml.MappingNode):
                children = [c for pair in n.value for c in pair]
            elif isinstance(n, yaml.SequenceNode):
                children = n.value
            total = 1
            for child in children:
                total += count(child)
                if total > MAX_POLICY_VALUES:
                    break
            counts[id(n)] = total
        return counts[id(n)]

    return 0 if node is None else count(node)


def _line_map(node: yaml.Node | None, path: tuple = ()) -> dict[tuple, int]:
    """Map each YAML path (keys and list indices) to its 1-based line."""
    lines: dict[tuple, int] = {}
    if node is None:
        return lines
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines[child] = key.start_mark.line + 1
            lines.update({k: v for k, v in _line_map(value, child).items() if k != child})
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_line_map(item, (*path, i)))
    return lines


def _nearest_line(lines: dict[tuple, int], loc: tuple) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1
