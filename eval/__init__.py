"""Evaluation: fast ROUGE-L, batched prediction, stepwise error analysis, reports."""
