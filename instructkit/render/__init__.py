"""Render: raw data -> (prompt, completion) pairs through template packs."""
