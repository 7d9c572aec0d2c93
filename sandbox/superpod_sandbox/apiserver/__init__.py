"""A local, in-memory Kubernetes API server (aiohttp) faithful enough for kopf, kubectl, helm and the client.

Start one with `server.Sandbox` (or `superpod sandbox`); `docs/sandbox.md` lists what it implements and every
known difference from kube-apiserver. Product code never imports this package (an import-linter contract).
"""
