"""Screening simulations: how much reading in ranked order saves before recall is reached."""
