"""The QXL device model: guest memory, rings, IO ports, interrupts and the command parser."""
