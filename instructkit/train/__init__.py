"""Train: the trainer contract (base), the run around it (run), the Hugging Face loop (hf)."""
