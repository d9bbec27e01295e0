"""The intake REST API that PSA tools call."""
