"""RQ job functions: thin, take ids, run in an app context (see openduty.worker), idempotent."""
