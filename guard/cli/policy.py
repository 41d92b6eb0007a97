"""``guard policy``: list the shipped policies and check a policy file before deploying it."""

from __future__ import annotations

from typing import Annotated

import typer

from guard.cli._common import JsonOpt
from guard.cli._output import emit


def register(app: typer.Typer) -> None:
    policy_app = typer.Typer(help="List and check policies.")
    app.add_typer(policy_app, name="policy")

    @policy_app.command("list")
    def list_(as_json: JsonOpt = False) -> None:
        """Policies shipped with the toolkit, by name."""
        from guard.policy import load, shipped

        data = {name: load(path).description for name, path in sorted(shipped().items())}
        emit(data, as_json, lambda c: [c.print(f"[bold]{k}[/]: {v}") for k, v in data.items()])

    @policy_app.command("check")
    def check(ref: Annotated[str, typer.Argument(help="A shipped policy name or a path.")], as_json: JsonOpt = False):
        """Validate a policy and say which scorer each rule will use here; errors name the file, line and field
        (exit 2)."""
        from guard.pipeline.checker import Checker
        from guard.cli._output import stderr
        from guard.policy import load, unchecked_labels

        policy = load(ref)
        for rule in unchecked_labels(policy):
            stderr.print(f"note: the thresholds of {rule} are not checked: its model is not on this machine, so "
                         "its labels are not known yet")
        checker = Checker()
        scorers = []  # which detector will score each rule on this machine, without loading any model
        for stage in ("prompt", "output"):
            for rule in getattr(policy.stages, stage):
                try:
                    runs, _, reason = checker.scorer(rule)
                except Exception as exc:  # noqa: BLE001 - bad options are reported, not fatal to the check
                    runs, reason = None, " ".join(str(exc).split())
                scorers.append({"stage": stage, "detector": rule.detector, "runs": runs, "reason": reason})
        data = {"name": policy.name, "source": policy.source, "sha256": policy.sha256,
                "policy": policy.model_dump(mode="json"), "scorers": scorers}

        def human(c) -> None:
            c.print(f"[green]ok[/]: {policy.name} ({policy.source})")
            for s in scorers:
                if s["runs"] == s["detector"] and not s["reason"]:
                    c.print(f"  {s['stage']}: {s['detector']}")
                elif s["runs"] == s["detector"]:
                    c.print(f"  {s['stage']}: {s['detector']} [yellow]cannot run here[/] ({s['reason']}) and has no "
                            "fallback")
                elif s["runs"] is None:
                    c.print(f"  {s['stage']}: {s['detector']} [red]cannot be built[/]: {s['reason']}")
                else:
                    c.print(f"  {s['stage']}: {s['runs']} (fallback; {s['detector']}: {s['reason']})")

        emit(data, as_json, human)
