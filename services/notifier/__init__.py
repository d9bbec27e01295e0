"""The notifier: partner webhooks, Microsoft request records and indirect-provider hand-offs."""
