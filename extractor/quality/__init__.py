"""Measuring the product: scoring against gold (evaluate, evaluation_run) and speed and memory (bench).
Nothing in the reading wings imports from here."""
