"""Helpers shared by the test modules; test modules import from here, never from each other.

- `cli`: the repository root and `run_cli` (the real CLI in a subprocess).
- `tiny_run`: the override set of the suite's tiny training runs.
- `toy_bundle`: toy ONNX export bundles built with onnx.helper (no torch).
- `profiling`: short `ProfileOptions` for timing tests.
- `data_fixtures`: tiny datasets in each real on-disk format.
- `import_graph`: the package's import graph, read from source (AST).
"""
