"""The classifier: escalation rules, service-health lookups and outage correlation."""
