"""Subresources beyond status: pods/binding, pods/eviction and scale."""
