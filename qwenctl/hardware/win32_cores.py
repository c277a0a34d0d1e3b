"""Windows: which physical cores are performance cores, from GetLogicalProcessorInformationEx(RelationProcessorCore).

Win32_Processor's counts tell an Intel hybrid's P- from E-cores only where the P-cores run two threads (cpu.py);
Lunar Lake, Arrow Lake and Panther Lake have no Hyper-Threading, so their counts are alike. The kernel's processor
core records carry an EfficiencyClass per physical core ("a higher value indicates a more performant core", as
Microsoft documents PROCESSOR_RELATIONSHIP), the classification Windows' own scheduler uses.

The buffer is a sequence of SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX records: Relationship (DWORD; 0 =
RelationProcessorCore), Size (DWORD, the record's bytes), then PROCESSOR_RELATIONSHIP: Flags (BYTE), EfficiencyClass
(BYTE), Reserved[20], GroupCount (WORD), GROUP_AFFINITY[GroupCount]. `read` calls the API (the live source records
the raw buffer in snapshots); `efficiency_classes` parses it, so tests feed it buffers laid out that way.
"""

from __future__ import annotations

import struct

RELATION_PROCESSOR_CORE = 0


def efficiency_classes(buffer: bytes) -> list[int]:
    """The EfficiencyClass of every physical core the buffer lists, in its order; [] for a malformed buffer."""
    classes, offset = [], 0
    while offset + 10 <= len(buffer):
        relationship, size = struct.unpack_from("<II", buffer, offset)
        if size < 10 or offset + size > len(buffer):
            return []
        if relationship == RELATION_PROCESSOR_CORE:
            classes.append(buffer[offset + 9])
        offset += size
    return classes


def read() -> bytes | None:  # pragma: no cover - Windows only; its parse is tested on recorded buffers
    """The processor-core records of this Windows machine, or None where the call fails."""
    import ctypes
    from ctypes import wintypes

    try:
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        length = wintypes.DWORD(0)
        kernel32.GetLogicalProcessorInformationEx(RELATION_PROCESSOR_CORE, None, ctypes.byref(length))
        buffer = ctypes.create_string_buffer(length.value)
        if not length.value or not kernel32.GetLogicalProcessorInformationEx(RELATION_PROCESSOR_CORE, buffer,
                                                                             ctypes.byref(length)):
            return None
        return buffer.raw[: length.value]
    except (AttributeError, OSError):
        return None
