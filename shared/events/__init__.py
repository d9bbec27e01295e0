"""Typed, versioned events and their CloudEvents envelope."""
