"""Evaluation of trained models: per-objective evaluators on whole splits
(`classification`, `contrastive`, with `retrieval`'s metrics), results
files (`results`), checkpoint restoring and `--mode=evaluate` (`restore`),
and `--mode=robustness` (`robustness`)."""
