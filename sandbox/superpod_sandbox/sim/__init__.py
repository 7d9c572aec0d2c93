"""A simulated Ascend fleet: Nodes, device-plugin ConfigMaps, a scheduler and kubelet stand-in, NPU-Exporters."""
