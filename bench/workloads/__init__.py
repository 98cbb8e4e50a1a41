"""One module per workload; each has `run(session) -> list[Measurement]`."""
