"""Evaluation: suites, graders and reports."""
