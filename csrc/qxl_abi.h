/* vgpu's own declaration of the QXL device ABI (revision 5), with the same
 * binary layout as spice-protocol's qxl_dev.h, plus vgpu's extensions.
 * cffi reads this file too (see cdef.py): keep to plain declarations. */
#ifndef VGPU_QXL_ABI_H
#define VGPU_QXL_ABI_H
#include <stdint.h>
#pragma pack(push, 1)

#define QXL_ROM_MAGIC 0x4f525851

typedef struct QXLRom {
    uint32_t magic;
    uint32_t id;
    uint32_t update_id;
    uint32_t compression_level;
    uint32_t log_level;
    uint32_t mode;
    uint32_t modes_offset;
    uint32_t num_io_pages;
    uint32_t pages_offset;
    uint32_t draw_area_offset;
    uint32_t surface0_area_size;
    uint32_t ram_header_offset;
    uint32_t mm_clock;
    uint32_t n_surfaces;
    uint64_t flags;
    uint8_t slots_start;
    uint8_t slots_end;
    uint8_t slot_gen_bits;
    uint8_t slot_id_bits;
    uint8_t slot_generation;
    uint8_t client_present;
    uint8_t client_capabilities[58];
    uint32_t client_monitors_config_crc;
    uint8_t padding[4];
    uint32_t pad2[2];
} QXLRom;

#pragma pack(pop)
#endif
