"""Every file one stage writes and another reads: dataset directories, manifests, outputs.

Imports no stage (tests/test_layout.py checks it)."""
