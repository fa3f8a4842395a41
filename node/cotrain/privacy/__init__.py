"""Privacy for contributors: what keeps a contributor's data out of what it publishes."""
