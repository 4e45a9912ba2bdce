"""Data files the tools read: the relevance gate's fitted model (relevance_gate.json)."""
