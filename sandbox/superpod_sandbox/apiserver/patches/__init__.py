"""Patches: JSON merge and JSON patch, strategic merge, field ownership (server-side apply), the PATCH verb."""
