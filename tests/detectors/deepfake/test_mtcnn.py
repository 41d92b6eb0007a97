"""MTCNN in plain torch: state dicts of the published shapes load strictly, the cascade's box arithmetic is
right, the finder option picks MTCNN or the Haar cascade, and (when facenet-pytorch is installed) the real
weights find real faces and no faces where there are none."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputError, ModelUnavailableError
from detectors.deepfake import faces, mtcnn


def _save_state_dicts(folder, edit=None):
    """Random weights in the released files' layout (``pnet.pt``, ``rnet.pt``, ``onet.pt``)."""
    import torch

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    for net, name in zip(mtcnn._networks(), mtcnn.FILES):
        state = net.state_dict()
        if edit:
            edit(name, state)
        torch.save(state, folder / name)
    return folder


def _always_a_face(name, state):
    """Every network says "face" with certainty and moves no box: the cascade's geometry alone decides."""
    head = {"pnet.pt": "conv4", "rnet.pt": "dense5", "onet.pt": "dense6"}[name]
    for key in state:
        if key.startswith(f"{head}_1."):
            state[key].zero_()
            if key.endswith("bias"):
                state[key][1] = 20.0
        if key.startswith(f"{head}_2."):
            state[key].zero_()


def test_state_dicts_load_strictly_and_errors_name_the_file(tmp_path):
    import torch

    folder = _save_state_dicts(tmp_path / "ok")
    detector = mtcnn.load(str(folder))
    assert detector.model_id.startswith("mtcnn:ok@")
    assert mtcnn.load(str(folder)) is detector  # one copy per process
    broken = _save_state_dicts(tmp_path / "broken")
    torch.save({"conv1.weight": torch.zeros(1)}, broken / "rnet.pt")
    with pytest.raises(InputError, match="rnet.pt: not the MTCNN state dict"):
        mtcnn.load(str(broken))
    (broken / "rnet.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="rnet.pt: not a PyTorch file"):
        mtcnn.load(str(broken))
    (folder / "onet.pt").unlink()
    mtcnn.load.cache_clear()
    with pytest.raises(ModelUnavailableError, match="onet.pt: MTCNN weights not found"):
        mtcnn.load(str(folder))


def test_cascade_boxes_stay_square_inside_the_image_and_apart(tmp_path, photos):
    detector = mtcnn.load(str(_save_state_dicts(tmp_path / "faces-everywhere", _always_a_face)))
    image = photos["astronaut"]
    boxes = detector.detect(image, min_face=100.0)
    assert len(boxes) > 0 and np.all(boxes[:, 4] > 0.99)
    sides = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    np.testing.assert_allclose(sides[:, 0], sides[:, 1], atol=1e-3)  # no regression: squares survive
    assert sides.min() >= 100 * 0.9  # nothing below the smallest face asked for
    # the last suppression compares by the smaller box: what is left overlaps by at most 70% of it
    keep = mtcnn.nms(boxes, 0.7, by_min=True)
    assert sorted(keep.tolist()) == list(range(len(boxes)))


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 99, 99, 0.9], [5, 5, 104, 104, 0.95], [200, 200, 249, 249, 0.5],
                      [10, 10, 49, 49, 0.8]], dtype=np.float64)
    assert mtcnn.nms(boxes, 0.5).tolist() == [1, 3, 2]  # box 0 overlaps box 1 by IoU 0.82; box 3 is inside
    assert mtcnn.nms(boxes, 0.7, by_min=True).tolist() == [1, 2]  # box 3 lies within box 1: gone by "min"


def test_square_and_crop_keep_the_centre_and_pad_outside_the_image():
    box = mtcnn._square(np.array([[10.0, 20.0, 30.0, 60.0, 0.9]]))[0]
    assert box[2] - box[0] == box[3] - box[1] == 40 and (box[0] + box[2]) / 2 == 20 and box[4] == 0.9
    image = np.full((50, 50, 3), 200, np.uint8)
    crop = mtcnn._crop(image, np.array([-25.0, -25.0, 24.0, 24.0]), 24)
    assert crop.shape == (24, 24, 3)
    assert crop[:10, :10].max() == 0 and crop[-6:, -6:].min() == 200  # outside: zeros; inside: the image


def test_finder_option_picks_a_finder(photos, tmp_path):
    assert faces.resolve("haar") == "haar" and faces.resolve("mtcnn") == "mtcnn"
    assert faces.resolve("auto") == ("mtcnn" if faces._mtcnn_installed() else "haar")
    assert faces.finder_id("haar") == "haar:haarcascade_frontalface_alt2.xml"
    with pytest.raises(InputError, match="face finder must be one of auto, mtcnn, haar"):
        faces.resolve("dlib")
    from detectors.deepfake import DeepfakeDetector

    from detectors.deepfake import spectral

    rng = np.random.default_rng(0)
    model = spectral.train(rng.random((4, 128)), rng.random((4, 128)) + 0.5).save(tmp_path / "m.json")
    detector = DeepfakeDetector(backend="spectral", checkpoint=str(model), face_finder="haar")
    assert detector.plan.finder == "haar" and detector.preprocess["face_finder"] == "haar"
    assert "face_finder" not in DeepfakeDetector(backend="spectral", checkpoint=str(model), faces=False).preprocess


def test_installed_weights_that_differ_from_their_pins_are_unavailable(tmp_path, monkeypatch):
    """facenet-pytorch laid out on ``sys.path`` (never imported) with state dicts that are not the released ones."""
    package = tmp_path / "site" / "facenet_pytorch"
    _save_state_dicts(package / "data")
    (package / "__init__.py").write_text("raise RuntimeError('weights packages must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ModelUnavailableError, match=r"mtcnn: data/\w+\.pt is SHA-256 [0-9a-f]{64}, expected"):
        mtcnn.weights_folder()


def test_auto_sees_mtcnn_installed_while_the_process_runs(tmp_path, monkeypatch):
    package = tmp_path / "site" / "facenet_pytorch"
    _save_state_dicts(package / "data")
    (package / "__init__.py").write_text("raise RuntimeError('weights packages must not be imported')\n")
    (package / "data" / "onet.pt").rename(tmp_path / "onet.pt")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert faces.resolve("auto") == "haar"  # not (completely) installed
    (tmp_path / "onet.pt").rename(package / "data" / "onet.pt")
    assert faces.resolve("auto") == "mtcnn"
    with pytest.raises(ModelUnavailableError, match="is SHA-256"):  # installed, but not the pinned weights
        faces.find_faces(np.zeros((64, 64, 3), np.uint8))


def _real_weights():
    try:
        return mtcnn.weights_folder()
    except ModelUnavailableError:
        pytest.skip("facenet-pytorch is not installed (guard models install mtcnn)")


@pytest.mark.weights
def test_real_weights_find_real_faces_only(photos):
    _real_weights()
    found = faces.find_faces(photos["astronaut"], finder="mtcnn")
    assert len(found) == 1
    box = found[0]
    centre = (box.x + box.w / 2, box.y + box.h / 2)
    assert 200 < centre[0] < 250 and 90 < centre[1] < 140 and 60 < box.w < 140 and box.confidence > 0.99
    for name in ("coffee", "rocket", "chelsea", "coins", "hubble_deep_field"):
        assert faces.find_faces(photos[name], finder="mtcnn") == [], name
    assert faces.finder_id("mtcnn").startswith("mtcnn:facenet_pytorch@")
