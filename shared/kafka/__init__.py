"""Kafka plumbing: topics, outbox relay, idempotent consumer loop, reconciler, embedded broker."""
