"""Official Account (placeholder until implemented)."""
