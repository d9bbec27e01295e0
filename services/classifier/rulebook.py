"""The rule sets in force: the deployment's, and any partner's own, all checked at start-up."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from shared.rules.loader import RulesError, load_rules
from shared.rules.schema import RuleSet


@dataclass(frozen=True)
class RuleBook:
    default: RuleSet
    by_partner: dict[uuid.UUID, RuleSet] = field(default_factory=dict)

    def for_partner(self, partner_id: uuid.UUID) -> RuleSet:
        return self.by_partner.get(partner_id, self.default)

    @classmethod
    def load(cls, rules_file: Path | None, partner_rules_dir: Path | None) -> RuleBook:
        """Load every file; any invalid one raises :class:`RulesError` naming file and line."""
        by_partner = {}
        if partner_rules_dir is not None:
            for path in sorted(partner_rules_dir.glob("*.yaml")):
                try:
                    partner_id = uuid.UUID(path.stem)
                except ValueError as exc:
                    raise RulesError(
                        str(path), ["the file name must be a partner id (UUID)"]
                    ) from exc
                by_partner[partner_id] = load_rules(path)
        return cls(default=load_rules(rules_file), by_partner=by_partner)
