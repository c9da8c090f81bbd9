"""The pure core: planning, quiet hours and the cascade, with no I/O and no clock reads."""
