"""The exact K-of-N mask distribution (conditional Poisson) and the token-level credit built on it."""
