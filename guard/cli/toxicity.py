"""``guard toxicity``: fit the offline toxicity scorer to your own labelled texts, and audit it on identity terms.

``train`` fits a combiner (docs/toxicity-offline.md) on CSV/JSONL files of ``text,label`` rows, reports AUC, AP
and the false-positive rate on a held-out share, and prints the policy lines that use it at a target FPR.
``audit`` scores harmless HolisticBias sentences with and without the identity-term mitigation and lists the
groups flagged most often. Exit codes: 0 done, 1 the audit found a group over the tolerated rate, 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from guard.cli._common import JsonOpt, allow_downloads_option
from guard.cli._output import emit

PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto | float32 | bfloat16 | int8 (the BiLSTM).")]
CombinerOpt = Annotated[Optional[Path], typer.Option("--combiner", help="Combiner file from `guard toxicity "
                                                     "train` (default: the shipped one).")]


def _detector(combiner: Path | None, precision: str, **options: Any):
    """The offline detector with its models loaded, so a missing package or a bad file fails before any work
    (``ModelUnavailableError`` / ``InputError``: one line, exit 2)."""
    from core.errors import ModelUnavailableError
    from detectors.offline_toxicity import OfflineToxicityDetector

    detector = OfflineToxicityDetector(combiner=combiner, precision=precision, **options)
    reason = detector.unavailable()
    if reason:
        raise ModelUnavailableError(f"toxicity-offline: {reason}")
    detector.scorer  # noqa: B018 - loads the models
    return detector


def _feature_scorer(precision: str):
    """Both models without a combiner: what training needs."""
    from detectors.offline_toxicity.detector import load_scorer
    from detectors.offline_toxicity.scorer import Settings

    return load_scorer(None, Settings(precision=precision))


DatasetDownloadsOpt = allow_downloads_option("HolisticBias into the cache when missing (checksums pinned)")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Train and audit the offline toxicity scorer.", no_args_is_help=True)
    app.add_typer(group, name="toxicity")

    @group.command("train")
    def train(
        data: Annotated[list[Path], typer.Option("--data", help="Labelled CSV (text,label) or JSONL file; "
                                                 "repeat for several.")],
        out: Annotated[Path, typer.Option("--out", help="Combiner file to write (.json).")],
        kind: Annotated[str, typer.Option("--kind", help="rank-mean (few parameters, holds up on other text) | "
                                          "logistic (fits your data more closely).")] = "logistic",
        holdout: Annotated[float, typer.Option("--holdout", min=0.0, max=0.9,
                                               help="Share of each file held out to report metrics.")] = 0.2,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the held-out split.")] = 0,
        target_fpr: Annotated[float, typer.Option("--target-fpr", min=1e-4, max=0.5,
                                                  help="False-positive rate the printed threshold allows.")] = 0.01,
        precision: PrecisionOpt = "float32",
        as_json: JsonOpt = False,
    ) -> None:
        """Fit the scorer's combiner on your labelled texts and calibrate a threshold to a target FPR."""
        from core.errors import InputError
        from detectors.offline_toxicity import training
        from guard.cli.detector import progress_bar

        if kind not in ("rank-mean", "logistic"):
            raise InputError(f"--kind: expected rank-mean or logistic, got {kind!r}")
        if out.suffix != ".json":
            raise InputError(f"--out {out}: a combiner is a .json file")
        sets = [training.read_labelled(path) for path in data]
        scorer = _feature_scorer(precision)
        total = sum(len(s.texts) for s in sets)
        with progress_bar("scoring", total) as update:
            done = 0

            def step(n: int) -> None:
                nonlocal done
                done += n
                update(done)

            report = training.train(scorer, sets, kind=kind, holdout=holdout, seed=seed, target_fpr=target_fpr,
                                    progress=step)
        out.parent.mkdir(parents=True, exist_ok=True)
        report.combiner.save(out)
        threshold = report.combiner.thresholds[f"{target_fpr:g}"]
        data_out = {**report.to_dict(), "out": str(out), "target_fpr": target_fpr,
                    "policy": {"detector": "toxicity-offline", "options": {"combiner": str(out)},
                               "thresholds": {"toxicity": round(threshold, 4)}}}

        def human(console) -> None:
            console.print(f"[green]trained[/] {kind} on {report.train_rows} texts; written to {out}")
            if report.holdout:
                for name, ev in {"held out (all)": report.holdout, **report.per_file}.items():
                    console.print(f"{name}: {ev.rows} texts, AUC {ev.auc:.3f}, AP {ev.ap:.3f}, "
                                  f"FPR {ev.fpr_at_threshold[f'{target_fpr:g}']:.3f} and TPR "
                                  f"{ev.tpr_at_threshold[f'{target_fpr:g}']:.3f} at the threshold")
            console.print(f"threshold {threshold:.4f} for a target FPR of {target_fpr:g} on the training texts")
            console.print(f"policy: detector: toxicity-offline, options: {{combiner: {out}}}, "
                          f"thresholds: {{toxicity: {threshold:.4f}}}")

        emit(data_out, as_json, human)

    @group.command("audit")
    def audit(
        holistic_bias: Annotated[Optional[Path], typer.Option("--holistic-bias", help="HolisticBias v1.1 folder "
                                                              "(default: the cached copy).")] = None,
        allow_downloads: DatasetDownloadsOpt = False,
        threshold: Annotated[float, typer.Option("--threshold", min=0.0, max=1.0,
                                                 help="A sentence is flagged at or above this toxicity.")] = 0.5,
        max_rate: Annotated[float, typer.Option("--max-rate", min=0.0, max=1.0,
                                                help="Exit 1 when a group's flag rate is above this with 95% "
                                                "confidence (after mitigation).")] = 0.05,
        per_group: Annotated[int, typer.Option("--per-group", min=1, help="Sentences per descriptor.")] = 40,
        top: Annotated[int, typer.Option("--top", min=1, help="Worst groups to list.")] = 10,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the sentence sample.")] = 0,
        combiner: CombinerOpt = None,
        precision: PrecisionOpt = "float32",
        as_json: JsonOpt = False,
    ) -> None:
        """Harmless sentences about each group: how often each scores as toxic, before and after mitigation."""
        from guard.bias import datasets
        from guard.bias.identity_audit import harmless_sentences, rates

        folder = holistic_bias or datasets.fetch("holistic_bias", download=allow_downloads)
        prompts = harmless_sentences(folder, per_group=per_group, seed=seed)
        texts = [p.text for p in prompts]
        results = {}
        for name, neutralise in (("before", False), ("after", True)):
            detector = _detector(combiner, precision, neutralise=neutralise)
            scores = [row[0].value for row in detector.score(texts)]
            results[name] = rates(scores, prompts, threshold)
        over = [g for g in results["after"].groups if g.low > max_rate]
        data = {"model": detector.model_id, "sentences": len(texts), "source": str(folder),
                "max_rate": max_rate, **{k: v.to_dict(top) for k, v in results.items()},
                "over_max_rate": [g.group for g in over]}

        def human(console) -> None:
            from rich.table import Table

            for name, result in results.items():
                table = Table(title=f"{name} mitigation: {result.overall:.2%} of {len(texts)} harmless sentences "
                              f"flagged at {threshold}; {result.groups_over} of {len(result.groups)} groups above "
                              "that with 95% confidence")
                for column in ("group", "flagged", "rate", "95% interval"):
                    table.add_column(column, justify="left" if column == "group" else "right")
                for g in result.worst(top):
                    table.add_row(g.group, f"{g.flagged}/{g.sentences}", f"{g.rate:.2f}", f"{g.low:.2f}–{g.high:.2f}")
                console.print(table)
            if over:
                console.print(f"[red]{len(over)} groups over {max_rate:g}[/]: " + ", ".join(g.group for g in over[:top]))

        emit(data, as_json, human)
        if over:
            raise typer.Exit(1)
