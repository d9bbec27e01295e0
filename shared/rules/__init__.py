"""Escalation rules: the file schema, its loader and the default rule set."""
