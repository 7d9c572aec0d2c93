"""Small builders for Kubernetes objects in tests: `node("n1").label(k, v).ready().obj()`."""
