"""What a guest's QXL driver does, as a library: allocate, build commands, push, wait."""
