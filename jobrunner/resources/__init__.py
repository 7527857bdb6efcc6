"""Typed models of the custom resources."""
