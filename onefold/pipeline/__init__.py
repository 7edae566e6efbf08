"""The processor stages that tail the event log and keep projections current."""
