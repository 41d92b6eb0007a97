"""Turn a ``--generator`` spec into a generator backend and a ``generate(prompts) -> completions`` function.

A spec is either ``module:function`` / ``path/to/file.py:function`` (a Python callable ``prompt -> str``, run
through ``CallableGenerator``) or a transformers model hub id or local folder (run through ``TransformersText``,
sampling, which is what an audit of K samples per prompt needs).
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from generators.base import Generator
from core.errors import InputError


def _is_callable_spec(spec: str) -> bool:
    module, sep, name = spec.rpartition(":")
    return bool(sep and module and name.isidentifier() and not Path(spec).exists())


def load_callable(spec: str) -> Callable[..., Any]:
    """``package.module:function`` or ``path/to/file.py:function``."""
    module_name, _, attr = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise InputError(f"{path}: generator file not found")
            name = f"_genguard_generator_{abs(hash(str(path.resolve())))}"
            loader = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loader)  # type: ignore[arg-type]
            sys.modules[name] = module
            loader.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(module_name)
    except InputError:
        raise
    except Exception as exc:  # an import can fail in any way; the user needs the reason in one line
        raise InputError(f"{spec}: cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InputError(f"{spec}: {module_name} has no callable {attr!r}")
    return fn


def _answerable(fn: Callable[..., Any], spec: str) -> Callable[..., str]:
    """The user's function, its failures and wrong answers reported as theirs (bad input, exit 2), not as a
    crash of the toolkit."""

    def call(prompt: str, **params: Any) -> str:
        try:
            text = fn(prompt, **params)
        except Exception as exc:
            raise InputError(f"generator {spec} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(text, str):
            raise InputError(f"generator {spec} returned {type(text).__name__}; expected str")
        return text

    return call


def build_generator(spec: str, **options: Any) -> Generator:
    """A ``CallableGenerator`` for ``module:function``, else ``TransformersText`` for a model id or folder."""
    if _is_callable_spec(spec):
        from generators.callable import CallableGenerator

        return CallableGenerator(_answerable(load_callable(spec), spec), model_id=spec, modality="text")
    from generators.transformers_text import TransformersText

    try:
        return TransformersText(spec, **options)
    except (OSError, ValueError) as exc:
        raise InputError(f"{spec}: cannot load a text generator: {exc}") from exc


def sampling_params(generator: Generator, *, max_new_tokens: int = 40, top_p: float = 0.9) -> dict[str, Any]:
    """Nucleus sampling as RealToxicityPrompts and BOLD generate (p = 0.9); none for a plain callable."""
    if generator.info.name == "callable":
        return {}
    return {"do_sample": True, "top_p": top_p, "max_new_tokens": max_new_tokens}


def generate_fn(
    generator: Generator, *, seed: int | None = None, guard: Any = None, **params: Any
) -> Callable[[list[str]], list[str | None]]:
    """``generate(prompts) -> completions`` over a backend (the audit's view of a generator).

    With ``guard`` (a ``guard.pipeline.Guard``) every completion goes through the guarded pipeline, as users
    get it: checked, marked, signed and logged; a blocked output comes back as None.

    With sampling parameters (a model backend), each call is generated as one batch with its own seed
    (``seed``, ``seed + 1``, ...): the audit repeats every prompt K times in a call, and a backend that splits a
    call into chunks seeded alike would give a repeated prompt the same sample in every chunk, so the K samples
    would not be independent. A rerun with the same seed reproduces the audit.
    """
    calls = itertools.count()

    def generate(prompts: list[str]) -> list[str | None]:
        extra: dict[str, Any] = {}
        if params:
            extra["batch_size"] = len(prompts)
            if seed is not None:
                extra["seed"] = seed + next(calls)
        if guard is not None:
            return [r.artifact for r in guard.run(generator, prompts, **params, **extra)]
        return [g.content for g in generator.generate(prompts, **params, **extra)]

    return generate
