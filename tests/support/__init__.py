"""Doubles and helpers shared by the tests and bench/."""
