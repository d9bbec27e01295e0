"""The three csp-escalation services and their command line."""
