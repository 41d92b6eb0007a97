"""A function of any kind as a generator: what each kind gives to each way of calling."""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

from generators.callable import CallableGenerator


def test_an_image_function_sets_the_modality():
    gen = CallableGenerator(lambda prompt: Image.new("RGB", (8, 8)))
    [out] = gen.generate(["a red square"])
    assert gen.modality == "image" and out.content.size == (8, 8)
    with pytest.raises(TypeError, match="only text can be streamed"):
        list(gen.stream("a red square"))


def test_parameters_reach_the_function_and_the_record():
    gen = CallableGenerator(lambda prompt, temperature: f"{prompt} at {temperature}")
    [out] = gen.generate(["p"], temperature=0.3)
    assert out.content == "p at 0.3" and out.params == {"temperature": 0.3}


def test_a_stream_keeps_its_text_and_closes_the_function_early():
    closed = []

    def pieces(prompt):
        try:
            yield from ("one ", "two ", "three ")
        finally:
            closed.append(True)

    stream = CallableGenerator(pieces).stream("p")
    assert next(stream) == "one " and stream.text == "one " and not stream.watermarked
    stream.close()
    assert closed == [True]


def test_a_callable_object_with_an_async_call_is_async():
    class Client:
        async def __call__(self, prompt):
            return "async object"

    gen = CallableGenerator(Client())
    assert asyncio.run(gen.agenerate(["p"]))[0].content == "async object"
    with pytest.raises(Exception, match="is async"):
        gen.generate(["p"])


def test_wrong_return_types_are_named():
    with pytest.raises(TypeError, match="returned int"):
        CallableGenerator(lambda prompt: 42).generate(["p"])
