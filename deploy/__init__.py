"""Deployment concern: settings, recipes, the CLI and the all-in-one runner.

Also holds the non-Python deployment files (Dockerfile, Prometheus, Grafana, recipes).
"""
