"""Fixtures of the review app tests: a log made by the real pipeline and a real server over it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the review extra is not installed (pip install 'genguard[review]')")


@pytest.fixture(scope="session")
def _review_log_template(tmp_path_factory):
    from tests.guard.review.helpers import build_review_log

    return build_review_log(tmp_path_factory.mktemp("review-template"))


@pytest.fixture(scope="module")
def review_log(_review_log_template, tmp_path_factory):
    """A fresh copy of the log per test module (building it runs the pipeline: seconds)."""
    template = _review_log_template
    folder = tmp_path_factory.mktemp("review") / "log"
    shutil.copytree(template.keys_dir.parent, folder)

    def moved(path):
        return folder / path.relative_to(template.keys_dir.parent)

    return dataclasses.replace(template, log_url=str(moved(Path(template.log_url))),
                               **{f: moved(getattr(template, f)) for f in ("keys_dir", "policy_file", "image_file",
                                                                         "text_file", "envelope_file")})


def start(review_log, **options):
    from guard.review.app import ReviewConfig, create_app
    from tests.guard.review.helpers import LiveServer

    config = ReviewConfig(log=review_log.log_url, keys=review_log.keys_dir, policies=(str(review_log.policy_file),),
                          self_test=False, index_every_s=0.2, password_profile="CHEAPEST",
                          **options)
    return LiveServer(create_app(config))


@pytest.fixture(scope="module")
def server(review_log):
    live = start(review_log, verify_per_minute=600, signin_per_minute=600)
    yield live
    live.stop()
