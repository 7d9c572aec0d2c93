"""The served kinds and the semantics of every write: creation, update, strategies, CRDs, deletion, events."""
