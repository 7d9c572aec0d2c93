"""Fault kinds and how each changes a node's device-plugin state: pure transitions, injected and healed.

What the real Ascend device plugin reports for each kind (MindCluster `pkg/device/ascendcommon.go`
`groupDevsByStatus` and `getDeviceFaults`, `build/faultCode.json`, `build/SwitchFaultCode.json`):

| kind | lists the device in | `-Fault` entry (fault_type / fault_handling / fault_code) |
|---|---|---|
| unhealthy | `-Unhealthy` (leaves the free list) | CardUnhealthy / SeparateNPU / 80E18402 |
| network | `-NetworkUnhealthy` (chip health unchanged, so it stays in the free list, as the plugin does) | CardNetworkUnhealthy / PreSeparateNPU / 81078603 (link down) |
| recovering | `-Unhealthy`, `-NetworkUnhealthy`, `-Recovering` (hot reset; on A3 the HiAM sibling die too) | CardUnhealthy / RestartNPU / 80E18005 |
| switch | no device list changes; `SwitchInfoCfg` gets a UB switch fault | `[0x00f103b0,155904,na,na]`, level Separate, node status UnHealthy |
| node-down | nothing in the ConfigMap: the plugin is gone, `UpdateTime` stops; the Node's Ready turns Unknown | - |

Heal removes what inject added (for one kind, or for all kinds when none is given).
"""

from __future__ import annotations

import dataclasses
import enum

from superpod_sandbox.sim import hardware, layout, plugin_state


class Kind(enum.StrEnum):
    UNHEALTHY = "unhealthy"
    NETWORK = "network"
    RECOVERING = "recovering"
    NODE_DOWN = "node-down"
    SWITCH = "switch"


DEVICE_KINDS = frozenset({Kind.UNHEALTHY, Kind.NETWORK, Kind.RECOVERING})


@dataclasses.dataclass(frozen=True)
class FaultCode:
    fault_type: str
    level: str
    code: str


CHIP_FAULT = FaultCode("CardUnhealthy", "SeparateNPU", "80E18402")
NETWORK_FAULT = FaultCode("CardNetworkUnhealthy", "PreSeparateNPU", "81078603")
RESET_FAULT = FaultCode("CardUnhealthy", "RestartNPU", "80E18005")
FAULT_OF_KIND = {Kind.UNHEALTHY: CHIP_FAULT, Kind.NETWORK: NETWORK_FAULT, Kind.RECOVERING: RESET_FAULT}

SWITCH_FAULT_CODE = "[0x00f103b0,155904,na,na]"  # a SeparateFaultCodes entry of SwitchFaultCode.json
SWITCH_FAULT_EVENT = 0x00F103B0
SWITCH_PEER_L2_PORT = 2  # PeerPortDevice of an L1-to-L2 plane port


class FaultError(ValueError):
    """The fault cannot apply here (unknown device, no switch on this hardware, ...)."""


def affected_devices(
    hw: hardware.Hardware, node: layout.SimNode, kind: Kind, device: str | None
) -> tuple[str, ...]:
    """The devices a fault of `kind` on `device` (None: every device of the node) touches."""
    if device is None:
        return node.devices
    if device not in node.devices:
        raise FaultError(
            f"node {node.name} has no device {device} (it has {node.devices[0]}..{node.devices[-1]})"
        )
    if kind is Kind.RECOVERING and hw.family is hardware.Family.A3:
        # an A3 hot reset resets the die and its HiAM sibling (setUnhealthyForA3: GetBrotherCardID)
        index = node.devices.index(device)
        first = index - index % hw.module_size
        return node.devices[first : first + hw.module_size]
    return (device,)


def _without_faults(
    faults: tuple[plugin_state.DeviceFault, ...], devices: frozenset[str], codes: frozenset[FaultCode]
) -> tuple[plugin_state.DeviceFault, ...]:
    return tuple(
        fault
        for fault in faults
        if not (
            fault.device in devices
            and any(fault.fault_type == code.fault_type and fault.code == code.code for code in codes)
        )
    )


def inject(
    state: plugin_state.PluginState,
    kind: Kind,
    devices: tuple[str, ...],
    now_ms: int,
    *,
    switch_port: int = 0,
) -> plugin_state.PluginState:
    """The state after a fault of `kind` on `devices` (ignored for switch faults) at `now_ms`."""
    if kind is Kind.SWITCH:
        fault = plugin_state.SwitchFault(
            code=SWITCH_FAULT_CODE,
            level="Separate",
            event_type=SWITCH_FAULT_EVENT,
            chip=0,
            port=switch_port,
            peer_device=SWITCH_PEER_L2_PORT,
            peer_port=switch_port,
            severity=2,
            time_ms=now_ms,
        )
        kept = tuple(old for old in state.switch_faults if old.key != fault.key)
        return dataclasses.replace(state, switch_faults=(*kept, fault))
    if kind not in DEVICE_KINDS:
        raise FaultError(
            f"{kind} is not a device-plugin fault; it changes the Node (see superpod_sandbox.sim.control)"
        )
    targets = frozenset(devices)
    code = FAULT_OF_KIND[kind]
    faults = _without_faults(state.faults, targets, frozenset({code}))
    new_faults = tuple(
        plugin_state.DeviceFault(name, code.fault_type, code.level, code.code, now_ms)
        for name in sorted(targets, key=layout.device_index)
    )
    if kind is Kind.UNHEALTHY:
        return dataclasses.replace(state, unhealthy=state.unhealthy | targets, faults=(*faults, *new_faults))
    if kind is Kind.NETWORK:
        return dataclasses.replace(
            state, network_unhealthy=state.network_unhealthy | targets, faults=(*faults, *new_faults)
        )
    return dataclasses.replace(
        state,
        unhealthy=state.unhealthy | targets,
        network_unhealthy=state.network_unhealthy | targets,
        recovering=state.recovering | targets,
        faults=(*faults, *new_faults),
    )


def heal(
    state: plugin_state.PluginState, kind: Kind | None, devices: tuple[str, ...]
) -> plugin_state.PluginState:
    """The state after healing `kind` (None: every kind) on `devices`."""
    targets = frozenset(devices)
    kinds = {kind} if kind is not None else {Kind.UNHEALTHY, Kind.NETWORK, Kind.RECOVERING, Kind.SWITCH}
    if Kind.SWITCH in kinds:
        state = dataclasses.replace(state, switch_faults=())
    codes = frozenset(FAULT_OF_KIND[each] for each in kinds if each in FAULT_OF_KIND)
    unhealthy, network, recovering = state.unhealthy, state.network_unhealthy, state.recovering
    if Kind.UNHEALTHY in kinds:
        unhealthy = unhealthy - targets
    if Kind.NETWORK in kinds:
        network = network - targets
    if Kind.RECOVERING in kinds:
        unhealthy, network, recovering = unhealthy - targets, network - targets, recovering - targets
    remaining = _without_faults(state.faults, targets, codes)
    # a device healed of one kind keeps the lists another still-open fault of it implies
    for fault in remaining:
        if fault.device not in targets:
            continue
        if (fault.fault_type, fault.code) == (CHIP_FAULT.fault_type, CHIP_FAULT.code):
            unhealthy = unhealthy | {fault.device}
        elif (fault.fault_type, fault.code) == (NETWORK_FAULT.fault_type, NETWORK_FAULT.code):
            network = network | {fault.device}
    return dataclasses.replace(
        state, unhealthy=unhealthy, network_unhealthy=network, recovering=recovering, faults=remaining
    )
