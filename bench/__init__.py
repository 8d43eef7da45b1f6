"""The benchmarks of the portal: ``python bench/run.py`` (see bench/harness for the harness)."""
