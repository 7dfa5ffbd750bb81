"""The escalation state machine and its planning (pure; time is passed in)."""
