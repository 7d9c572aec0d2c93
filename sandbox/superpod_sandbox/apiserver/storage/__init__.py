"""The in-memory object store and the watch fan-out it feeds."""
