"""`python -m edgemtl` (what torchrun launches) runs the CLI."""

from edgemtl.cli import main

main()
