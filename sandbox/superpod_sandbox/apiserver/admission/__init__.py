"""Admission webhooks: the configurations in the store, and the calls kube-apiserver makes to them."""
