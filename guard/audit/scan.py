"""``guard scan``: judge every image and text file under some paths, and say what each one is.

Images go to the image detectors (the deepfake detector, batched with decoding in worker processes) and, when
the toolkit's C2PA reader and image watermark are installed, get their C2PA manifest status and our watermark;
text files go to the text detectors the policy configures. Every file ends as exactly one JSON record:
``ok`` with scores, ``error`` (unreadable, empty, corrupt, too large: reported, never fatal) or ``skipped`` (not
an image or text, or no detector for its kind).

Resuming: records are appended to a JSONL file as they are made; a later run with the same file skips every
file whose content hash (SHA-256) is already recorded there, wherever it now lies, so an interrupted scan of a
million files restarts where it stopped. A torn last line (the process was killed mid-write) is ignored.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.hashing import sha256_file
from core.imageio import image_suffixes

MAX_FILE_BYTES = 256 * 1024 * 1024  # larger files are reported, not read
MAX_TEXT_CHARS = 200_000  # text detectors read at most this much of a file
IMAGE_BLOCK = 256  # images scored per block: results are written (and resumable) block by block
SHIFT_SAMPLE = 10_000  # images the calibration shift check keeps (a uniform sample: memory stays bounded)
TEXT_BATCH = 32


@dataclass
class Rule:
    """One detector as the scan runs it: its name, the built detector, and when its scores are flagged.

    ``thresholds`` from a policy rule flag through the pipeline's own test (``checker.violated``): only the
    labels listed, at ``value >= threshold``. Without thresholds (``None``: a detector set up on the command
    line) a score is flagged at the detector's own threshold in ``details`` (the calibrated one), else at 0.5.
    """

    name: str
    detector: Any
    thresholds: dict[str, float] | None = None

    def flags(self, scores: list[Any]) -> list[str]:
        from guard.pipeline.checker import violated

        if self.thresholds is None:
            crossed = [s for s in scores if s.value >= s.details.get("threshold", 0.5)]
        else:
            crossed = violated(self.thresholds, scores)
        return [f"{s.detector}:{s.label}" for s in crossed]


@dataclass
class ScanSettings:
    image_rules: list[Rule] = field(default_factory=list)
    text_rules: list[Rule] = field(default_factory=list)
    watermark_secret: bytes | None = None  # our watermark is looked for only with the key store's secret
    trust_anchors_pem: bytes | None = None  # makes our own C2PA signer read "Trusted"
    provenance: bool = True  # C2PA status and watermark columns, where those modules are installed
    max_file_bytes: int = MAX_FILE_BYTES


@dataclass
class Summary:
    files: int = 0
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    already_scanned: int = 0
    flagged: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.files += 1
        status = record["status"]
        if status == "ok":
            self.ok += 1
        elif status == "error":
            self.errors += 1
        else:
            self.skipped += 1
        if record.get("flagged"):
            self.flagged += 1

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class ShiftWatch:
    """What a calibrated detector's shift check reads, gathered from image records as the scan makes them (each
    score's ``details["input"]`` and ``details["raw"]``; never the images), and the check itself at the end: the
    calibrated false-positive rate holds only for images like the calibration set, so the scan says when its
    images are not (``detectors.deepfake.shift``). Past ``SHIFT_SAMPLE`` images it keeps a uniform sample
    (reservoir sampling, fixed seed): a two-sample test reads a uniform sample as it reads the whole."""

    rule: Rule
    inputs: list[dict[str, Any]] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    seen: int = 0
    _random: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    @classmethod
    def for_rules(cls, rules: list[Rule]) -> list[ShiftWatch]:
        return [cls(rule) for rule in rules if getattr(rule.detector, "calibration", None) is not None]

    def add(self, record: dict[str, Any]) -> None:
        if record.get("status") != "ok":
            return
        for score in record.get("scores", []):
            details = score.get("details") or {}
            if score.get("detector") == self.rule.detector.name and "input" in details and "raw" in details:
                self.seen += 1
                if len(self.raw) < SHIFT_SAMPLE:
                    self.inputs.append(details["input"])
                    self.raw.append(details["raw"])
                    continue
                slot = self._random.randrange(self.seen)
                if slot < SHIFT_SAMPLE:
                    self.inputs[slot], self.raw[slot] = details["input"], details["raw"]

    def report(self) -> dict[str, Any]:
        return {"detector": self.rule.name, **self.rule.detector.calibration.shift(self.inputs, self.raw).to_dict()}


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files named and files under folders named, recursively, sorted; ``InputError`` for a missing path."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink()))
        elif path.exists() or path.is_symlink():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return files


def already_scanned(jsonl: Path) -> set[str]:
    """Content hashes recorded in an earlier run's JSONL output (missing file: none). A file that holds no scan
    record at all is refused: resuming appends to it, and no other file is to be written into."""
    if not jsonl.exists():
        return set()
    done, lines, records = set(), 0, 0
    try:
        with open(jsonl, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                lines += 1
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn line from an interrupted run: that file is scanned again
                if isinstance(record, dict) and "path" in record and "status" in record:
                    records += 1
                    if record.get("sha256"):
                        done.add(record["sha256"])
    except UnicodeDecodeError:
        raise InputError(f"--resume {jsonl}: not UTF-8 text, so not the JSONL of an earlier scan") from None
    except OSError as exc:
        raise InputError(f"--resume {jsonl}: cannot read: {exc.strerror or exc}") from None
    if lines and not records:
        raise InputError(f"--resume {jsonl}: holds no scan records; give the JSONL file an earlier scan wrote")
    return done


def _kind(path: Path) -> str:
    """``image`` if an image decoder recognises the header or the name says image (a corrupt photo is reported
    as a corrupt image, not as "not an image"), ``text`` if the start is UTF-8 without NUL bytes."""
    from PIL import Image

    try:
        with Image.open(path) as image:  # header only
            image.size
        return "image"
    except Image.DecompressionBombError:
        return "image"  # an image all the same; the detector reports the bomb
    except Exception:  # noqa: BLE001 - anything an image decoder refuses is not an image to us, unless so named
        if path.suffix.lower() in image_suffixes():
            return "image"
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    if b"\x00" in head:
        return "other"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut by the 64 KiB window is still text
            return "other"
    return "text"


def scan(
    paths: Iterable[str | Path],
    settings: ScanSettings,
    *,
    skip: set[str] | None = None,
    on_record: Callable[[dict[str, Any]], None],
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Scan files, calling ``on_record`` with each file's record as soon as it is made. Files whose SHA-256 is
    in ``skip`` are not scanned again. ``progress(done, total)`` follows the files."""
    files = expand(paths)
    skip = set(skip or ())
    summary = Summary()
    total, done = len(files), 0
    images: list[dict[str, Any]] = []
    texts: list[dict[str, Any]] = []

    def emit(record: dict[str, Any]) -> None:
        nonlocal done
        summary.add(record)
        on_record(record)
        done += 1
        if progress:
            progress(done, total)

    for path in files:
        record: dict[str, Any] = {"path": str(path)}
        try:
            size = path.stat().st_size
            record["size"] = size
            if path.is_symlink() and not path.exists():
                raise OSError("dangling symbolic link")
            if size == 0:
                emit({**record, "kind": "other", "status": "error", "error": "empty file (0 bytes)"})
                continue
            if size > settings.max_file_bytes:
                emit({**record, "kind": "other", "status": "error",
                      "error": f"{size:,} bytes is larger than the {settings.max_file_bytes:,}-byte limit"})
                continue
            record["sha256"] = sha256_file(path)
            kind = _kind(path)
        except OSError as exc:
            emit({**record, "kind": "other", "status": "error", "error": f"cannot read: {exc.strerror or exc}"})
            continue
        if record["sha256"] in skip:
            summary.already_scanned += 1
            done += 1
            if progress:
                progress(done, total)
            continue
        skip.add(record["sha256"])  # a second copy of the same content in this run is not scanned twice
        record["kind"] = kind
        if kind == "image":
            images.append(record)
            if len(images) >= IMAGE_BLOCK:
                _score_images(images, settings, emit)
                images = []
        elif kind == "text":
            texts.append(record)
            if len(texts) >= TEXT_BATCH:
                _score_texts(texts, settings, emit)
                texts = []
        else:
            emit({**record, "status": "skipped", "reason": "not an image or text file"})
    _score_images(images, settings, emit)
    _score_texts(texts, settings, emit)
    return summary


def _score_images(records: list[dict[str, Any]], settings: ScanSettings, emit) -> None:
    if not records:
        return
    paths = [r["path"] for r in records]
    found: list[list[list[Any]]] = [[[] for _ in settings.image_rules] for _ in records]  # [image][rule] scores
    errors: list[str | None] = [None] * len(records)
    for k, rule in enumerate(settings.image_rules):
        for index, error, scores in _iter_image_scores(rule.detector, paths):
            if error is not None:
                errors[index] = errors[index] or error
            found[index][k] = scores
    if not settings.image_rules:  # no detector decoded them: an image that does not decode is unreadable, not ok
        errors = [_undecodable(path) for path in paths]
    for i, record in enumerate(records):
        if errors[i] is not None:
            emit({**record, "status": "error", "error": _strip_path(errors[i], record["path"])})
            continue
        out = {**record, "status": "ok", **_judged(settings.image_rules, found[i])}
        if settings.provenance:
            out.update(_provenance(Path(record["path"]), settings))
        if not settings.image_rules:
            out["reason"] = "no image detector configured"
            if "c2pa" not in out and "watermark" not in out:
                out["status"] = "skipped"
        emit(out)


def _undecodable(path: str) -> str | None:
    """Why the image at ``path`` cannot be decoded within the pixel limit (None when it can)."""
    from core.errors import InputError
    from core.imageio import load_image

    try:
        load_image(path)
    except InputError as exc:
        return str(exc)
    return None


def _judged(rules: list[Rule], per_rule: list[list[Any]]) -> dict[str, Any]:
    return {
        "scores": [score.to_dict() for scores in per_rule for score in scores],
        "flagged": [flag for rule, scores in zip(rules, per_rule) for flag in rule.flags(scores)],
    }


def _iter_image_scores(detector, paths: list[str]) -> Iterator[tuple[int, str | None, list[Any]]]:
    """(index, error, scores) per path: batched ``iter_scores`` where the detector has it, else one by one."""
    if hasattr(detector, "iter_scores"):
        for result in detector.iter_scores(paths):
            yield result.index, result.error, result.scores or []
        return
    from core.imageio import load_image

    for i, path in enumerate(paths):
        try:
            yield i, None, detector.score([load_image(path)])[0]
        except Exception as exc:  # noqa: BLE001 - one bad file is reported and the scan goes on
            yield i, str(exc), []


def _strip_path(message: str, path: str) -> str:
    return message.removeprefix(f"{path}: ")


def _provenance(path: Path, settings: ScanSettings) -> dict[str, Any]:
    """C2PA status and our watermark, each only where its module is installed (other columns are left out)."""
    out: dict[str, Any] = {}
    data = path.read_bytes()
    try:
        from guard.signing.c2pa import read_manifest
    except ImportError:
        read_manifest = None
    if read_manifest is not None:
        try:
            out["c2pa"] = read_manifest(data, trust_anchors_pem=settings.trust_anchors_pem).to_dict()
        except Exception as exc:  # noqa: BLE001 - a manifest reader failure is reported in the column
            out["c2pa"] = {"status": "unreadable", "error": f"{type(exc).__name__}: {exc}"}
    if settings.watermark_secret is None:
        return out
    try:
        from guard.watermark.image import detect
    except ImportError:
        return out
    from core.imageio import decode_image

    try:
        image, _ = decode_image(data, name=str(path))
        out["watermark"] = detect(image.convert("RGB"), settings.watermark_secret).to_dict()
    except Exception as exc:  # noqa: BLE001 - as above
        out["watermark"] = {"found": False, "error": f"{type(exc).__name__}: {exc}"}
    return out


def _score_texts(records: list[dict[str, Any]], settings: ScanSettings, emit) -> None:
    if not records:
        return
    if not settings.text_rules:
        for record in records:
            emit({**record, "status": "skipped", "reason": "no text detector configured"})
        return
    texts: list[str | None] = []
    for record in records:
        try:
            with open(record["path"], encoding="utf-8", errors="replace") as fh:
                texts.append(fh.read(MAX_TEXT_CHARS))
        except OSError as exc:
            texts.append(None)
            record["error"] = f"cannot read: {exc.strerror or exc}"
    readable = [i for i, t in enumerate(texts) if t is not None]
    found: dict[int, list[list[Any]]] = {i: [[] for _ in settings.text_rules] for i in readable}
    failures: dict[str, str] = {}
    for k, rule in enumerate(settings.text_rules):
        try:
            for i, scores in zip(readable, rule.detector.score([texts[i] for i in readable])):
                found[i][k] = scores
        except Exception as exc:  # noqa: BLE001 - a failing detector is reported for these files, not fatal
            failures[rule.name] = f"{type(exc).__name__}: {exc}"
    for i, record in enumerate(records):
        if texts[i] is None:
            emit({**record, "status": "error"})
            continue
        if len(failures) == len(settings.text_rules):
            emit({**record, "status": "error", "error": "; ".join(f"{k}: {v}" for k, v in failures.items())})
            continue
        out = {**record, "status": "ok", **_judged(settings.text_rules, found[i])}
        if failures:
            out["detector_errors"] = failures
        emit(out)
