"""``kemm config``: check a run config without training, list the models, write the reference."""

from __future__ import annotations

from pathlib import Path

import typer

from kemm.cli.common import KemmTyper, console
from kemm.cli.run import with_run_config
from kemm.errors import ConfigError


def register(app: typer.Typer) -> None:
    group = KemmTyper(help="Run configs: check one, list the models, write the reference.")

    @group.command("check")
    @with_run_config
    def check(run_config=None) -> None:
        """Validate a whole config without training: types and model hyper-parameters, then
        every input read and checked as a run would (tables, splits, reports and facts, the
        header of every feature bag), with what each model will read."""
        from kemm.cohort import prepare_cohort
        from kemm.cohort.text import load_text_modality

        data = prepare_cohort(run_config.data, text_loader=load_text_modality)
        for line in coverage_lines(run_config, data):
            console.print(line, highlight=False, soft_wrap=True)
        console.print(f"config {run_config.name!r}: OK, {len(run_config.models)} model(s), "
                      f"{len(data.splits)} fold(s)", highlight=False)  # fmt: skip

    @group.command("models")
    def models() -> None:
        """Every registered model: its kind, the inputs it can read, and its hyper-parameters
        (the keys of `params`) with their types and defaults."""
        from dataclasses import MISSING, fields

        from kemm.models.registry import get_entry, list_models

        for name in list_models():
            entry = get_entry(name)
            inputs = ", ".join(sorted(entry.modalities)) or "its bases' risks"
            console.print(f"[bold]{name}[/bold] ({entry.kind}; reads {inputs})", soft_wrap=True)
            if entry.kind == "torch":
                for f in fields(entry.factory.Params):
                    default = entry.defaults.get(f.name, f.default)
                    shown = "required" if default is MISSING else repr(default)
                    console.print(f"    {f.name}: {f.type} = {shown}", highlight=False)
            else:
                console.print(f"    params: {', '.join(entry.hparam_names() or ['(any)'])}",
                              highlight=False)  # fmt: skip

    @group.command("docs")
    def docs(
        out: Path = typer.Option(Path("docs/config.md"), "--out", help="Markdown to write."),
        examples: Path = typer.Option(
            Path("examples"), "--examples", help="Folder of the worked example configs."
        ),
    ) -> None:
        """Write the config reference (every key: type, default, meaning; worked examples)."""
        from kemm.engine.config import EXAMPLES, config_reference

        texts = {f: (examples / f).read_text() for _, f in EXAMPLES if (examples / f).is_file()}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(config_reference(texts))
        console.print(f"wrote {out}", highlight=False)

    app.add_typer(group, name="config")


def coverage_lines(config, data) -> list[str]:
    """What the prepared cohort gives each model: an error for a model that would read
    nothing; counts and examples of matched and unmatched slides, reports and facts."""
    from kemm.engine.fold_models import used_modalities
    from kemm.models.registry import get_entry

    cohort = data.cohort
    target = cohort.target
    lines = [
        f"patients: {len(cohort)} ({int(target.event.sum())} events); folds: "
        f"{', '.join(s.name for s in data.splits) or 'none'}",
    ]
    if data.groups:
        lines.append(f"genomics: {len(data.groups)} groups, "
                     f"{sum(len(g.features) for g in data.groups)} features")  # fmt: skip
    report = data.bag_report or {}
    if report:
        lines.append(
            f"slides: {report['patients_with_bags']} of {len(cohort)} patients have a feature bag "
            f"in {report['features_dir']}; {report['slides_without_features']} slide(s) of the "
            f"table have none (e.g. {report['example_missing'][:3]})"
        )
    if data.text is not None:
        text = data.text
        lines.append(
            f"reports: {len(text.report_embeddings)} of {len(cohort)} patients have statements; "
            f"{len(text.reports_without_statements)} report(s) yielded none"
            + (f" (e.g. {text.reports_without_statements[:3]})" if text.reports_without_statements else "")
        )  # fmt: skip
    facts = [c for c in data.clinical.columns if c.endswith("=unknown")]
    if facts:
        unknown = data.clinical[facts].eq(1).all(axis=1)
        lines.append(f"report facts: {int((~unknown).sum())} of {len(cohort)} patients have at "
                     "least one stated fact")  # fmt: skip
    for spec in config.models:
        entry = get_entry(spec.name)
        bases = [b.display for b in config.bases_of(spec)]
        if entry.kind == "stack":
            lines.append(f"model {spec.display!r}: combines the out-of-fold risks of {bases}")
            continue
        reads = used_modalities(spec, data)
        if not reads:
            raise ConfigError(
                f"model {spec.display!r} reads {sorted(entry.modalities)}, and the data give "
                f"{sorted(data.available_modalities) or 'none of them'}"
            )
        over = f"; a residual over {bases}" if spec.residual_over else ""
        lines.append(f"model {spec.display!r}: reads {', '.join(sorted(reads))}{over}")
    return lines
