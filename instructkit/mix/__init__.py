"""Mix: rendered datasets -> one exact blend (spec, plan, quotas, hygiene, write)."""
