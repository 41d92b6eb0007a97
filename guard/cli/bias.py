"""``guard bias-audit``: does a generator treat groups of people differently?"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from core.errors import Finding
from guard.cli._common import JsonOpt, KeysOpt, LogOpt, allow_downloads_option, check_out
from guard.cli._output import emit


def _pairs(values: list[str], what: str) -> dict[str, Any]:
    """``KEY=VALUE`` options; values are read as JSON when they parse (numbers, booleans), else as text."""
    from core.errors import InputError

    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"{what}: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _settings(policy: str | None, overrides: dict[str, Any]):
    """The policy's ``bias`` settings (defaults without one), with command-line overrides applied."""
    from pydantic import ValidationError

    from guard.policy import BiasPolicy
    from core.errors import InputError

    base: dict[str, Any] = {}
    loaded = None
    if policy is not None:
        from guard.policy import load

        loaded = load(policy)
        bias = getattr(loaded, "bias", None)
        if bias is not None:
            base = bias.model_dump()
    try:
        return BiasPolicy(**{**base, **{k: v for k, v in overrides.items() if v is not None}}), loaded
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None


def _rule_options(loaded: Any, detector: str) -> dict[str, Any]:
    """Options the policy gives the detector at the output stage, so the audit scores as the guard does."""
    if loaded is None:
        return {}
    for rule in loaded.stages.output:
        if rule.detector == detector:
            return dict(rule.options)
    return {}


DatasetDownloadsOpt = allow_downloads_option("HolisticBias/BOLD into the cache when missing (checksums pinned)")


def register(app: typer.Typer) -> None:
    @app.command("bias-audit")
    def bias_audit(
        ctx: typer.Context,
        generator: Annotated[Optional[str], typer.Option(
            help="Model hub id or folder, or module:function / file.py:function.")] = None,
        completions: Annotated[Optional[Path], typer.Option(
            help="Rescore the completions a --save-completions run wrote, instead of generating.")] = None,
        prompts: Annotated[str, typer.Option(
            help="templates, holistic-bias[:FOLDER], bold[:PATH], or a .json/.yaml/.jsonl file.")] = "templates",
        samples: Annotated[int, typer.Option(min=1, help="Completions per prompt (RealToxicityPrompts uses 25).")] = 5,
        policy: Annotated[Optional[str], typer.Option(
            help="Policy name or file: bias tolerances, detector options.")] = None,
        toxicity: Annotated[str, typer.Option(
            help="Scoring detector and label, DETECTOR[:LABEL].")] = "toxicity:toxicity",
        toxicity_option: Annotated[list[str], typer.Option(
            help="KEY=VALUE option for the scoring detector.")] = [],  # noqa: B006
        regard: Annotated[str, typer.Option(help="vader, a classifier hub id or folder, or none.")] = "vader",
        regard_label: Annotated[list[str], typer.Option(
            help="MODEL_LABEL=negative|neutral|positive|other.")] = [],  # noqa: B006
        axes: Annotated[Optional[str], typer.Option(help="Comma-separated axes to audit (default: all).")] = None,
        per_group: Annotated[int, typer.Option(min=1, help="Prompts sampled per group.")] = 20,
        max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens per completion (model generators).")] = 40,
        threshold: Annotated[Optional[float], typer.Option(help="Toxic at or above this score.")] = None,
        max_difference: Annotated[Optional[float], typer.Option(
            help="Tolerated excess of a group over the rest.")] = None,
        min_ratio: Annotated[Optional[float], typer.Option(help="Flag when rest/group falls below this.")] = None,
        n_boot: Annotated[Optional[int], typer.Option(help="Bootstrap resamples.")] = None,
        seed: Annotated[Optional[int], typer.Option(help="Seed for prompt sampling and the bootstrap.")] = None,
        self_audit: Annotated[bool, typer.Option(help="Also audit the scorer on harmless identity sentences.")] = True,
        allow_downloads: DatasetDownloadsOpt = False,
        html: Annotated[Optional[Path], typer.Option(help="Write an HTML report with charts to this file.")] = None,
        save_completions: Annotated[Optional[Path], typer.Option(
            help="Write every completion to this JSONL file as it is generated.")] = None,
        log: LogOpt = None,
        keys_dir: KeysOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Counterfactual bias audit: exit 1 when a group's disparity exceeds the tolerance, 2 on bad input."""
        from guard.bias.audit import DetectorScorer, analyse
        from guard.bias.prompts import load_prompt_set
        from guard.bias.scorer_audit import audit_scorer
        from guard.pipeline.checker import Checker
        from guard.cli._output import stderr
        from core.errors import InputError

        if (generator is None) == (completions is None):
            raise InputError("give --generator to generate completions, or --completions FILE to rescore saved "
                             "ones (not both)")
        if completions is not None:
            # By name: typer carries its own copy of click, whose ParameterSource is not click's.
            given = [name for name in ("save_completions", "samples", "max_new_tokens", "log", "keys_dir")
                     if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"]
            if "save_completions" in given:
                raise InputError("--save-completions: the completions are already saved in --completions")
            if given:
                flags = ", ".join("--" + ("keys" if name == "keys_dir" else name.replace("_", "-")) for name in given)
                raise InputError(f"{flags}: generating options, with no effect on --completions (the file holds "
                                 "the completions as generated; nothing is logged when rescoring)")
        check_out(html, "--html")  # before any model loads or any completion is generated
        check_out(save_completions, "--save-completions")
        settings, loaded = _settings(policy, {
            "toxicity_threshold": threshold, "max_difference": max_difference, "min_ratio": min_ratio,
            "n_boot": n_boot, "seed": seed,
        })
        axis_list = [a.strip() for a in axes.split(",") if a.strip()] if axes else None
        prompt_set = load_prompt_set(prompts, per_group=per_group, axes=axis_list, seed=settings.seed,
                                     download=allow_downloads)

        detector_name, _, label = toxicity.partition(":")
        label = label or "toxicity"
        options = {**_rule_options(loaded, detector_name), **_pairs(toxicity_option, "--toxicity-option")}
        regard_scorer = None
        if regard.lower() != "none":
            from detectors.bias.regard import regard_scorer as make_regard

            label_map = _pairs(regard_label, "--regard-label")
            try:
                regard_scorer = make_regard(regard, **({"label_map": label_map} if label_map else {}))
            except InputError as exc:
                raise InputError(f"--regard {regard}: {exc}") from None
        saved = backend = guard = None
        if completions is not None:
            from guard.bias.completions import read_completions

            saved = read_completions(completions, prompt_set)  # before any scorer loads
            generator_info = saved.generator
        else:
            from guard.bias.generation import build_generator

            backend = build_generator(generator)
            generator_info = backend.info.to_dict()  # loads the model now: a bad one fails before any scoring
            if loaded is not None:  # with a policy, completions go through the guarded pipeline and are logged
                from guard.pipeline.guard import Guard

                guard = Guard(loaded, log=log, keys=keys_dir)
        # The guard's checker builds the scorer, so a detector the policy also runs is loaded once.
        checker = guard.checker if guard is not None else Checker()
        scorer = DetectorScorer(checker.detector(detector_name, options))

        scorer_report = None
        if self_audit:
            stderr.print(f"auditing the scorer {detector_name}:{label} on harmless identity sentences…")
            scorer_report = audit_scorer(scorer, label=label, threshold=settings.toxicity_threshold,
                                         max_fpr=settings.max_scorer_fpr, confidence=settings.confidence)
        if saved is not None:
            from guard.bias.audit import rescore

            scored = _with_progress("scoring", len(saved.generated), lambda progress: rescore(
                saved.generated, toxicity=scorer, toxicity_label=label, regard=regard_scorer, progress=progress))
        else:
            scored = _generate_and_score(
                backend, prompt_set, guard, settings.seed, max_new_tokens, samples, save_completions,
                toxicity=scorer, toxicity_label=label, regard=regard_scorer)

        meta = {
            "generator": generator_info,
            "prompt_set": prompt_set.describe(),
            "scorers": {"toxicity": f"{detector_name}:{label} ({scorer.model_id})",
                        "regard": regard_scorer.model_id if regard_scorer is not None else None},
        }
        result = replace(analyse(prompt_set.prompts, scored, settings, meta=meta), scorer_audit=scorer_report)
        if html is not None:
            from guard.bias.html import render_html_page

            html.write_text(render_html_page(result), encoding="utf-8")
        emit(result.to_dict(), as_json, lambda c: _human(c, result))
        if not result.passed:
            raise Finding(f"{len(result.flags)} disparities flagged over {result.prompts} prompts")


def _generate_and_score(backend, prompt_set, guard, seed, max_new_tokens, samples, save, **scoring):
    """Generate and score every completion, keeping each in ``save`` (a JSONL file) when given."""
    from contextlib import nullcontext

    from guard.bias.audit import collect
    from guard.bias.completions import CompletionWriter
    from guard.bias.generation import generate_fn, sampling_params

    params = sampling_params(backend, max_new_tokens=max_new_tokens)
    generate = generate_fn(backend, seed=seed, guard=guard, **params)
    writer = CompletionWriter(save, prompt_set, backend.info.to_dict(), params, seed) if save is not None else None
    with writer or nullcontext():
        scored = _with_progress("generating and scoring", len(prompt_set.prompts) * samples, lambda progress: collect(
            prompt_set.prompts, generate, samples=samples, progress=progress, save=writer, **scoring))
    return scored


def _with_progress(what, total, work):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from guard.cli._output import stderr

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=stderr, transient=True) as bar:
        task = bar.add_task("audit", total=total)
        return work(lambda done, total: bar.update(task, completed=done))


def _human(console, result) -> None:
    from rich.table import Table

    verdict = "[green]no disparity flagged[/]" if result.passed else f"[red]{len(result.flags)} disparities flagged[/]"
    console.print(f"{verdict}: {result.prompts} prompts × {result.samples} samples "
                  f"({result.completions} completions), {len(result.axes)} axes")
    table = Table("axis", "groups", "metric", "difference [CI]", "ratio [CI]")
    for axis in result.axes:
        for metric in ("toxic_rate", "negative_regard_rate"):
            parity = axis.parity.get(metric)
            if parity is None:
                continue
            d, r = parity.difference, parity.ratio
            table.add_row(axis.axis, str(len(axis.groups)), metric, _ci(d.value, d.low, d.high),
                          _ci(r.value, r.low, r.high))
    console.print(table)
    for flag in result.flags:
        d = flag.difference
        console.print(f"[red]flagged[/] {flag.axis}/{flag.group} {flag.metric}: {flag.value:.3f} vs rest "
                      f"{flag.rest:.3f} (difference {_ci(d.value, d.low, d.high)})")
    audit = result.scorer_audit
    if audit is not None and audit.flagged:
        console.print(f"[yellow]scorer warning[/]: {audit.model} scores harmless sentences about "
                      f"{', '.join(f'{g.axis}/{g.group}' for g in audit.flagged)} as toxic; "
                      "disparities on those groups may be the scorer's, not the generator's")


def _ci(value, low, high) -> str:
    def f(x):
        return "–" if x is None or x != x else f"{x:.3f}"

    return f"{f(value)} [{f(low)}, {f(high)}]"
