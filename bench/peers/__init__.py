"""Baselines from other libraries. Run only in their own virtualenv (.venv-peer): never imported by TechBank."""
