"""A PSA's priority, or its impact and urgency, as a Microsoft severity.

ConnectWise sends names like ``Priority 1 - Emergency Response``, Autotask ``Critical`` or
``High``, HaloPSA ``P1``..``P4``; ITIL-minded desks send impact and urgency. The tables are in
``PSA_PRIORITY_MAP`` and ``PSA_IMPACT_URGENCY_MAP``; an explicit ``severity`` always wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.settings import PsaSettings
from shared.vocabulary import Severity

_NUMBERED = re.compile(r"^(?:priority|prio|p)?\s*[-_:#]?\s*(\d)\b")
_LEVELS = {"1": "high", "2": "medium", "3": "low", "h": "high", "m": "medium", "l": "low"}


class UnknownPriority(ValueError):
    def __init__(self, field: str, value: str, known: list[str]) -> None:
        super().__init__(f"{value!r} is not in the {field} table; known: {', '.join(known)}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Resolved:
    severity: Severity
    source: str  # for the timeline: where the severity came from


def resolve(
    *,
    severity: Severity | None,
    priority: str | None,
    impact: str | None,
    urgency: str | None,
    settings: PsaSettings,
) -> Resolved:
    if severity is not None:
        return Resolved(severity, "given")
    if priority:
        key = _priority_key(priority)
        table = {k.casefold(): v for k, v in settings.priority_map.items()}
        if key not in table:
            raise UnknownPriority("priority", priority, sorted(table))
        return Resolved(Severity(table[key]), f"PSA priority {priority!r}")
    if impact and urgency:
        key = f"{_level(impact)}:{_level(urgency)}"
        table = {k.casefold(): v for k, v in settings.impact_urgency_map.items()}
        if key not in table:
            raise UnknownPriority("impact_urgency", f"{impact} x {urgency}", sorted(table))
        return Resolved(Severity(table[key]), f"PSA impact {impact!r} x urgency {urgency!r}")
    return Resolved(Severity.MODERATE, "default")


def _priority_key(value: str) -> str:
    text = value.strip().casefold()
    numbered = _NUMBERED.match(text)
    if numbered:
        return numbered.group(1)
    return text.split(" - ", 1)[0].strip()


def _level(value: str) -> str:
    text = value.strip().casefold()
    numbered = re.match(r"^(\d)", text)
    if numbered:
        return _LEVELS.get(numbered.group(1), text)
    text = re.sub(r"^\d+\s*[-.:]\s*", "", text)
    return _LEVELS.get(text, text)
