"""Prefect flows: thin wiring of the lmforge stage functions (see docs/architecture.md)."""
