"""``escalation rules check|explain``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from services.classifier.explain import ExplainInput, explain, facts_from
from shared.db.base import utcnow
from shared.rules.loader import RulesError, load_rules

rules_app = typer.Typer(no_args_is_help=True, help="Escalation rules.")


@rules_app.command("check")
def check(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Validate a rules file; print every problem with its line and exit 1 if there is one."""
    try:
        ruleset = load_rules(file)
    except RulesError as exc:
        for problem in exc.problems:
            typer.echo(f"{file}: {problem}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{file}: {len(ruleset.rules)} rules, OK")


@rules_app.command("explain")
def explain_issue(
    issue: Annotated[str, typer.Option(help="Issue JSON, or @path to a JSON file.")],
    rules: Annotated[Path | None, typer.Option(help="Rules file (default: packaged).")] = None,
) -> None:
    """Show which rule decides an issue, and why each rule before it did not."""
    text = Path(issue[1:]).read_text("utf-8") if issue.startswith("@") else issue
    try:
        data = ExplainInput.model_validate_json(text)
        ruleset = load_rules(rules)
    except ValidationError as exc:
        typer.echo(f"invalid issue JSON: {exc}", err=True)
        raise typer.Exit(2) from exc
    except RulesError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    for line in explain(ruleset, facts_from(data, utcnow())):
        typer.echo(line)
