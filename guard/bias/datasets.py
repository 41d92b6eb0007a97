"""Published bias prompt sets, fetched on request into a checksummed cache.

Nothing is downloaded unless asked (``guard bias-audit --allow-downloads``). Each file is checked against a pinned
SHA-256 before it enters the cache, and again when it is read from there, so an audit always runs on the exact
data it names. The pinned checksums are those of the copies this toolkit is tested against; if upstream edits a
file, the download stops with a checksum error, and a copy you vouch for can be passed by path instead.

Both sets are licensed CC BY-SA 4.0:
- HolisticBias v1.1: Smith, Hall, Kambadur, Presani, Williams (2022), "I'm sorry to hear that": Finding New Biases
  in Language Models with a Holistic Descriptor Dataset. facebookresearch/ResponsibleNLP.
- BOLD: Dhamala, Sun, Kumar, Krishna, Pruksachatkun, Chang, Gupta (2021), BOLD: Dataset and Metrics for
  Measuring Biases in Open-Ended Language Generation. amazon-science/bold.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError
from core.hashing import sha256_file
from guard.home import guard_home


@dataclass(frozen=True)
class Dataset:
    name: str
    base_url: str
    files: dict[str, str]  # file name -> SHA-256
    license: str
    citation: str


DATASETS = {
    "holistic_bias": Dataset(
        name="holistic_bias",
        base_url="https://raw.githubusercontent.com/facebookresearch/ResponsibleNLP/main/holistic_bias/dataset/v1.1/",
        files={
            "descriptors.json": "c1328f0edfdeefb76302d360a01878df3db55f18026f4ea1956b4a0f52daf943",
            "nouns.json": "9bbe15bf01ea8827fd5d68a81ee2b05e04bd5f79478d9027efec0b4dbd232ee6",
            "sentence_templates.json": "8b1cf8fc3c9a10b12cf77902e8c2ff3d80e3fcfff2f177a00256925acb4f53a5",
            "standalone_noun_phrases.json": "bac592574f81df55e8c8d8e3919a866d43cbd8df5ae9376a68d95e7b83dbebac",
        },
        license="CC BY-SA 4.0",
        citation="Smith et al. (2022), HolisticBias v1.1, facebookresearch/ResponsibleNLP",
    ),
    "bold": Dataset(
        name="bold",
        base_url="https://raw.githubusercontent.com/amazon-science/bold/main/prompts/",
        files={
            "gender_prompt.json": "a863aaf2492e3c911c39f435005abee2eba5f5edabe836e97de110cd83273054",
            "political_ideology_prompt.json": "a83ea7cc272971b618231e13bcb5c1d1be5b208c92135c4ffde85be31f8ab4c6",
            "profession_prompt.json": "5508012069f20419559417e64d8bb2b8d864ebf8afedd21e5ca564393c291794",
            "race_prompt.json": "200337f6c43b09671e580b1df6aea2cdc0196ee02779260e9881da07029e1cb6",
            "religious_ideology_prompt.json": "633830ea87d569e5476895a93f68b8f686cb0dcae6d67a1091a9247c5c4c931d",
        },
        license="CC BY-SA 4.0",
        citation="Dhamala et al. (2021), BOLD, amazon-science/bold",
    ),
}


def cache_dir() -> Path:
    return guard_home() / "datasets"


def fetch(name: str, *, download: bool = False, root: Path | None = None, timeout: float = 60.0) -> Path:
    """The cached folder of a published data set; downloads it first when ``download`` is true."""
    dataset = DATASETS[name]
    folder = (root or cache_dir()) / name
    missing = [f for f in dataset.files if not (folder / f).is_file()]
    if missing and not download:
        raise InputError(
            f"{name} is not in the cache ({folder}); pass --allow-downloads to fetch it from {dataset.base_url} "
            f"({dataset.license}), or name a local copy as {name.replace('_', '-')}:PATH"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for file in missing:
        _download(dataset.base_url + file, folder / file, dataset.files[file], timeout)
    for file, expected in dataset.files.items():
        actual = sha256_file(folder / file)
        if actual != expected:
            raise InputError(f"{folder / file}: checksum {actual} does not match the pinned {expected}; delete it")
    return folder


def _download(url: str, target: Path, expected: str, timeout: float) -> None:
    """Download to a temporary file in the target folder, check the checksum, then rename into place."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"{url}: download failed: {getattr(exc, 'reason', exc)}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise InputError(f"{url}: checksum {actual} does not match the pinned {expected}; not cached")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, target)
