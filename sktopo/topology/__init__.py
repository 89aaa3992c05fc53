"""Persistent homology: diagrams, engines, features and distances."""
