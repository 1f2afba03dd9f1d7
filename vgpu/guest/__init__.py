"""What a guest's QXL driver does, as a library: allocate, build commands, push, wait.

- `driver.GuestDriver(attachment)`: ROM, memslots, allocators, `submit(cmd)` for any
  `vgpu.device.commands` value, create_primary / update_area / reset / monitors_config
  and the other IO helpers, `wait_interrupt`, `collect_releases`, `read_input`.
- `builders.CommandWriter`: lays typed commands out in guest memory (chunked data).
- `alloc.Allocator`: first-fit allocation in a BAR.
- `remote`: the guest end of the unix-socket transport.
"""
