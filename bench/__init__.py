"""TechBank's benchmark suite: `python -m bench` (make bench), `python -m bench --quick` (make bench-quick)."""
