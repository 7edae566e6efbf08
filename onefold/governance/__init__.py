"""Governance: tokens and access now; consent, erasure and audit arrive with later stages."""
