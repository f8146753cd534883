"""Evaluate: generation, scoring, predictions files, metrics, forgetting."""
