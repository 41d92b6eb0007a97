"""The payload's channel code: convolutional code with soft Viterbi decoding, and the keyed tag."""

from __future__ import annotations

import numpy as np

from guard.watermark import image_coding as coding

MAC_KEY = b"k" * 32
MESSAGE = bytes.fromhex("5a3c0123456789abcdef")


def test_sizes():
    assert coding.INFO_BITS == 16 + 64 + 40
    assert coding.encode(coding.frame(MAC_KEY, MESSAGE)).size == coding.CODED_BITS == 378


def test_decodes_through_noise_and_corrects_bit_errors():
    rng = np.random.default_rng(1)
    coded = coding.encode(coding.frame(MAC_KEY, MESSAGE))
    clean = 1.0 - 2.0 * coded
    soft = clean * 1.5 + rng.normal(size=clean.size)  # about 7 % of hard decisions wrong
    assert np.count_nonzero((soft < 0) != coded) > 10
    assert coding.unframe(MAC_KEY, coding.decode(soft)) == MESSAGE


def test_batch_decoding_matches_single_words():
    rng = np.random.default_rng(2)
    clean = 1.0 - 2.0 * coding.encode(coding.frame(MAC_KEY, MESSAGE))
    words = clean * 1.2 + rng.normal(size=(5, clean.size))
    batch = coding.decode(words)
    for word, decoded in zip(words, batch):
        assert np.array_equal(coding.decode(word), decoded)


def test_tag_rejects_a_changed_message_or_another_key():
    bits = coding.frame(MAC_KEY, MESSAGE)
    flipped = bits.copy()
    flipped[20] ^= 1
    assert coding.unframe(MAC_KEY, bits) == MESSAGE
    assert coding.unframe(MAC_KEY, flipped) is None
    assert coding.unframe(b"x" * 32, bits) is None


def test_list_decoding_starts_with_the_best_message_and_holds_the_runners_up():
    rng = np.random.default_rng(7)
    info = coding.frame(MAC_KEY, bytes(range(10)))
    clean = 1.0 - 2.0 * coding.encode(info)
    words = clean + rng.normal(0.0, 1.2, size=(200, clean.size))
    lists = coding.decode_list(words, 8)
    assert lists.shape == (200, 8, coding.INFO_BITS)
    assert (lists[:, 0] == coding.decode(words)).all()
    assert all(len({m.tobytes() for m in messages}) == 8 for messages in lists)
    # Words whose best message is wrong but whose true message is among the next seven: the detector's rescue.
    missed = ~(lists[:, 0] == info).all(axis=1)
    rescued = missed & (lists[:, 1:] == info).all(axis=2).any(axis=1)
    assert missed.sum() > 0 and rescued.sum() > 0
