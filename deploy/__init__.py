"""Composition root: the CLI, the all-in-one runner, the wiring of storage into the workers and
the benchmark tools; beside it the deployment files (recipes, Dockerfile, Prometheus, Grafana,
demo frames)."""
