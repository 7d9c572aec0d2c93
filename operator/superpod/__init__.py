"""superpod-operator: topology-aware partitions of Huawei Ascend SuperPoDs on Kubernetes."""

__version__ = "0.1.0"
