"""Audiences and computed traits: the definition language, its compiler to SQL and its evaluation."""
