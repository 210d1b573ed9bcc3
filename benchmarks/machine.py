"""What machine a benchmark ran on: kept for benchmarks not yet ported to `benchmarks.report`,
which records the machine with every result (use `report.start()` / `report.write_report`)."""

from benchmarks.report import cpu_model  # noqa: F401
