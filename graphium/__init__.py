"""graphium: declarative multi-host container deployment."""
