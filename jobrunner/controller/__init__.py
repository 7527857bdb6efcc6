"""Reconcile loops and the scheduler that drives them."""
