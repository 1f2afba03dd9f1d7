"""The QXL device model: guest memory, rings, IO ports, interrupts and the command parser.

Modules:
- `device`: `Device` (IO ports of QXL revision 5, interrupts, rings, surfaces, release
  ring, guest-bug state; `process()` on the owning thread, `io_write()` /
  `push_input()` / `set_client_monitors_config()` / `wait_for_work()` from any),
  `DeviceObserver` (on_io, on_command, on_primary_created, ... for recorders),
  `PrimaryCreate`, `SurfaceInfo`, `MonitorHead`, `IoRequest`.
- `inprocess`: `InProcessAttachment` (a guest in this process, threaded or inline) and
  `DeviceThread` (runs `process()` on a thread of its own).
- `memory`: `GuestMemory` (the memfd: ROM | RAM | VRAM), `MemoryLayout`, `MemSlots`
  (QXLPHYSICAL translation), `GuestBug`.
- `parser`: `Parser` (guest memory -> `commands` values) and its named limits.
- `abi` / `layouts`: struct layouts of csrc/qxl_abi.h through cffi (`Layout`).
- `commands`, `backend`: the shared contracts (typed commands, `DisplayBackend`).
- `transport`: out-of-process guests over a unix socket.
"""
