"""Driftline's benchmarks: `python -m benchmarks [NAME ...]` (or `make bench`) runs them all.

A benchmark is a module here with a `run() -> dict` function returning JSON-ready figures. The
harness runs each module in its own process, one after another (they share the cores, so never
at once), and writes `benchmarks/results/<name>.json` and `<name>.md`. A result with a `tables`
list (`{"title", "columns", "rows"}` each) renders as Markdown tables; `notes` (strings) follow
them; any other result renders as a key/value table. Modules stay runnable on their own with
`python -m benchmarks.<name>` through `benchmarks.harness.main_for(__name__, run)`.
"""
