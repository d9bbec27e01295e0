"""Load and check a rules file: schema errors, duplicate ids, unreachable rules, the catch-all.

Every error names the line of the file it is about, so ``escalation rules check`` and a service
that refuses to start both point at the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.rules.schema import Rule, RuleSet, When

DEFAULT_RULES = "default_rules.yaml"


class RulesError(ValueError):
    """The file is not a usable rule set; ``problems`` lists each with its line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True)
class _Lines:
    """Line numbers (1-based) of the YAML nodes, by path of keys and indexes."""

    root: yaml.Node

    def of(self, path: tuple[Any, ...]) -> int:
        node = self.root
        for step in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                child = next((v for k, v in node.value if k.value == step), None)
                if child is None:
                    child = next((k for k, _ in node.value if k.value == step), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
                child = node.value[step] if step < len(node.value) else None
            if child is None:
                break
            node = child
        return node.start_mark.line + 1


def load_rules(path: Path | None = None) -> RuleSet:
    """The rule set at ``path``, or the default one shipped with the package."""
    if path is None:
        text = resources.files("shared.rules").joinpath(DEFAULT_RULES).read_text("utf-8")
        return parse_rules(text, source=DEFAULT_RULES)
    return parse_rules(path.read_text("utf-8"), source=str(path))


def parse_rules(text: str, *, source: str) -> RuleSet:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(source, [f"not valid YAML: {exc}"]) from exc
    if root is None or not isinstance(data, dict):
        raise RulesError(source, ["line 1: the file must be a mapping with 'version' and 'rules'"])
    lines = _Lines(root)
    try:
        ruleset = RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RulesError(
            source,
            [
                f"line {lines.of(tuple(err['loc']))}: {'.'.join(str(p) for p in err['loc'])}: "
                f"{err['msg']}"
                for err in exc.errors(include_url=False)
            ],
        ) from exc
    problems = _structure_problems(ruleset, lines)
    if problems:
        raise RulesError(source, problems)
    return ruleset


def _structure_problems(ruleset: RuleSet, lines: _Lines) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    for index, rule in enumerate(ruleset.rules):
        line = lines.of(("rules", index))
        if rule.id in seen:
            problems.append(
                f"line {line}: rule id {rule.id!r} is already used on line {seen[rule.id]}"
            )
        seen.setdefault(rule.id, line)
        shadow = _shadowing_rule(ruleset.rules[:index], rule)
        if shadow is not None:
            problems.append(
                f"line {line}: rule {rule.id!r} can never match: rule {shadow.id!r} "
                "above it matches everything it would"
            )
    last = ruleset.rules[-1]
    if last.continue_ or not last.when.is_empty():
        problems.append(
            f"line {lines.of(('rules', len(ruleset.rules) - 1))}: the last rule must "
            "be a catch-all (no conditions, no 'continue')"
        )
    return problems


def _shadowing_rule(earlier: tuple[Rule, ...], rule: Rule) -> Rule | None:
    for candidate in earlier:
        if not candidate.continue_ and _covers(candidate.when, rule.when):
            return candidate
    return None


def _covers(broad: When, narrow: When) -> bool:
    """True if every issue that ``narrow`` matches is also matched by ``broad``."""
    for name, wanted in broad.model_dump(exclude_none=True).items():
        have = getattr(narrow, name)
        if have is None:
            return False
        if isinstance(wanted, frozenset):
            if not have <= wanted:
                return False
        elif name == "cluster_size_at_least":
            if have < wanted:
                return False
        elif name == "confidence_below":
            if have > wanted:
                return False
        elif have != wanted:
            return False
    return True
