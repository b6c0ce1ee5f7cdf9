"""Raw behaviour logs -> clean Delta tables (events, users, items) and quarantine."""
