"""Fixtures of the review app tests: a log made by the real pipeline and a real server over it."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the review extra is not installed (pip install 'genguard[review]')")


@pytest.fixture(scope="module")
def review_log(tmp_path_factory):
    from tests.guard.review.helpers import build_review_log

    return build_review_log(tmp_path_factory.mktemp("review"))


def start(review_log, **options):
    from guard.review.app import ReviewConfig, create_app
    from tests.guard.review.helpers import LiveServer

    config = ReviewConfig(log=review_log.log_url, keys=review_log.keys_dir, policies=(str(review_log.policy_file),),
                          self_test=False, index_every_s=0.2, **options)
    return LiveServer(create_app(config))


@pytest.fixture(scope="module")
def server(review_log):
    live = start(review_log, verify_per_minute=600, signin_per_minute=600)
    yield live
    live.stop()
