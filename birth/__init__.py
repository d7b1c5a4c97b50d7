"""Birth profiles: a caller's birth details, sealed at rest, and who may read them."""
