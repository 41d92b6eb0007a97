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
