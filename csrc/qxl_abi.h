/* vgpu's own declaration of the QXL device ABI (revision 5), with the same
 * binary layout as spice-protocol's qxl_dev.h, plus vgpu's extensions.
 *
 * Every struct is packed (as qxl_dev.h packs them). cffi reads this file too
 * (see cdef.py): keep to plain declarations and `#define NAME number`.
 * tests/device/test_abi_layout.py compiles a program against the system
 * header and proves sizes and offsets equal to the ones declared here.
 *
 * vgpu extensions (not in qxl_dev.h; a stock guest driver never looks at them):
 *   - VgpuRomExt lives in the ROM at VGPU_ROM_EXT_OFFSET, after QXLRom and
 *     before the mode list. Its `features` word announces the extensions
 *     (VGPU_FEATURE_*); a guest that finds no VGPU_ROM_EXT_MAGIC there must
 *     assume none.
 *   - VgpuInputRing lives in the RAM bar at VgpuRomExt.input_ring_offset: the
 *     device produces client input events, the guest consumes them, with the
 *     same prod/cons/notify protocol as the QXL rings. The device raises
 *     VGPU_INTERRUPT_INPUT when it pushes and the guest asked for a notify.
 *   - Vgpu3dRing and Vgpu3dFence live in the RAM bar at VgpuRomExt.gl_ring_offset
 *     and gl_fence_offset (VGPU_FEATURE_3D_RING): the guest produces batches of
 *     3D commands, rings VGPU_IO_NOTIFY_3D, and the device writes completed fence
 *     values and raises VGPU_INTERRUPT_3D. docs/3d-ring.md is the specification.
 */
#ifndef VGPU_QXL_ABI_H
#define VGPU_QXL_ABI_H
#include <stdint.h>
#pragma pack(push, 1)

/* --- identity ------------------------------------------------------------ */
#define REDHAT_PCI_VENDOR_ID 0x1b36
#define QXL_DEVICE_ID_STABLE 0x0100
#define QXL_REVISION_STABLE_V12 4
#define QXL_ROM_MAGIC 0x4f525851
#define QXL_RAM_MAGIC 0x41525851

/* --- IO ports (offsets in the IO BAR), revision 5 ------------------------ */
#define QXL_IO_NOTIFY_CMD 0
#define QXL_IO_NOTIFY_CURSOR 1
#define QXL_IO_UPDATE_AREA 2
#define QXL_IO_UPDATE_IRQ 3
#define QXL_IO_NOTIFY_OOM 4
#define QXL_IO_RESET 5
#define QXL_IO_SET_MODE 6
#define QXL_IO_LOG 7
#define QXL_IO_MEMSLOT_ADD 8
#define QXL_IO_MEMSLOT_DEL 9
#define QXL_IO_DETACH_PRIMARY 10
#define QXL_IO_ATTACH_PRIMARY 11
#define QXL_IO_CREATE_PRIMARY 12
#define QXL_IO_DESTROY_PRIMARY 13
#define QXL_IO_DESTROY_SURFACE_WAIT 14
#define QXL_IO_DESTROY_ALL_SURFACES 15
#define QXL_IO_UPDATE_AREA_ASYNC 16
#define QXL_IO_MEMSLOT_ADD_ASYNC 17
#define QXL_IO_CREATE_PRIMARY_ASYNC 18
#define QXL_IO_DESTROY_PRIMARY_ASYNC 19
#define QXL_IO_DESTROY_SURFACE_ASYNC 20
#define QXL_IO_DESTROY_ALL_SURFACES_ASYNC 21
#define QXL_IO_FLUSH_SURFACES_ASYNC 22
#define QXL_IO_FLUSH_RELEASE 23
#define QXL_IO_MONITORS_CONFIG_ASYNC 24
#define QXL_IO_RANGE_SIZE 25

/* --- interrupts (QXLRam.int_pending / int_mask bits) --------------------- */
#define QXL_INTERRUPT_DISPLAY 1
#define QXL_INTERRUPT_CURSOR 2
#define QXL_INTERRUPT_IO_CMD 4
#define QXL_INTERRUPT_ERROR 8
#define QXL_INTERRUPT_CLIENT 16
#define QXL_INTERRUPT_CLIENT_MONITORS_CONFIG 32
#define VGPU_INTERRUPT_INPUT 256
#define VGPU_INTERRUPT_3D 512

/* vgpu's own IO ports start here, clear of any future QXL port. */
#define VGPU_IO_NOTIFY_3D 32

/* --- command types, draw types, sub-types -------------------------------- */
#define QXL_CMD_NOP 0
#define QXL_CMD_DRAW 1
#define QXL_CMD_UPDATE 2
#define QXL_CMD_CURSOR 3
#define QXL_CMD_MESSAGE 4
#define QXL_CMD_SURFACE 5
#define QXL_COMMAND_FLAG_COMPAT 1
#define QXL_COMMAND_FLAG_COMPAT_16BPP 2

#define QXL_DRAW_NOP 0
#define QXL_DRAW_FILL 1
#define QXL_DRAW_OPAQUE 2
#define QXL_DRAW_COPY 3
#define QXL_COPY_BITS 4
#define QXL_DRAW_BLEND 5
#define QXL_DRAW_BLACKNESS 6
#define QXL_DRAW_WHITENESS 7
#define QXL_DRAW_INVERS 8
#define QXL_DRAW_ROP3 9
#define QXL_DRAW_STROKE 10
#define QXL_DRAW_TEXT 11
#define QXL_DRAW_TRANSPARENT 12
#define QXL_DRAW_ALPHA_BLEND 13
#define QXL_DRAW_COMPOSITE 14

#define QXL_EFFECT_BLEND 0
#define QXL_EFFECT_OPAQUE 1
#define QXL_EFFECT_REVERT_ON_DUP 2
#define QXL_EFFECT_BLACKNESS_ON_DUP 3
#define QXL_EFFECT_WHITENESS_ON_DUP 4
#define QXL_EFFECT_NOP_ON_DUP 5
#define QXL_EFFECT_NOP 6
#define QXL_EFFECT_OPAQUE_BRUSH 7

#define QXL_CURSOR_SET 0
#define QXL_CURSOR_MOVE 1
#define QXL_CURSOR_HIDE 2
#define QXL_CURSOR_TRAIL 3
#define QXL_CURSUR_DEVICE_DATA_SIZE 128

#define QXL_SURFACE_CMD_CREATE 0
#define QXL_SURFACE_CMD_DESTROY 1
#define QXL_SURF_TYPE_PRIMARY 0
#define QXL_SURF_FLAG_KEEP_DATA 1

#define QXL_IMAGE_GROUP_DRIVER 0
#define QXL_IMAGE_GROUP_DEVICE 1
#define QXL_IMAGE_GROUP_RED 2
#define QXL_IMAGE_GROUP_DRIVER_DONT_CACHE 3
#define QXL_IMAGE_CACHE 1
#define QXL_IMAGE_HIGH_BITS_SET 2
#define QXL_BITMAP_DIRECT 1
#define QXL_BITMAP_UNSTABLE 2
#define QXL_BITMAP_TOP_DOWN 4

#define QXL_PATH_BEGIN 1
#define QXL_PATH_END 2
#define QXL_PATH_CLOSE 8
#define QXL_PATH_BEZIER 16

/* --- SPICE enums the device reads (numbers of spice/enums.h) ------------- */
#define SPICE_CLIP_TYPE_NONE 0
#define SPICE_CLIP_TYPE_RECTS 1
#define SPICE_BRUSH_TYPE_NONE 0
#define SPICE_BRUSH_TYPE_SOLID 1
#define SPICE_BRUSH_TYPE_PATTERN 2
#define SPICE_MASK_FLAGS_INVERS 1
#define SPICE_IMAGE_TYPE_BITMAP 0
#define SPICE_IMAGE_TYPE_QUIC 1
#define SPICE_IMAGE_TYPE_LZ_PLT 100
#define SPICE_IMAGE_TYPE_LZ_RGB 101
#define SPICE_IMAGE_TYPE_GLZ_RGB 102
#define SPICE_IMAGE_TYPE_FROM_CACHE 103
#define SPICE_IMAGE_TYPE_SURFACE 104
#define SPICE_IMAGE_TYPE_JPEG 105
#define SPICE_IMAGE_TYPE_FROM_CACHE_LOSSLESS 106
#define SPICE_IMAGE_TYPE_ZLIB_GLZ_RGB 107
#define SPICE_IMAGE_TYPE_JPEG_ALPHA 108
#define SPICE_IMAGE_TYPE_LZ4 109
#define SPICE_BITMAP_FMT_INVALID 0
#define SPICE_BITMAP_FMT_1BIT_LE 1
#define SPICE_BITMAP_FMT_1BIT_BE 2
#define SPICE_BITMAP_FMT_4BIT_LE 3
#define SPICE_BITMAP_FMT_4BIT_BE 4
#define SPICE_BITMAP_FMT_8BIT 5
#define SPICE_BITMAP_FMT_16BIT 6
#define SPICE_BITMAP_FMT_24BIT 7
#define SPICE_BITMAP_FMT_32BIT 8
#define SPICE_BITMAP_FMT_RGBA 9
#define SPICE_BITMAP_FMT_8BIT_A 10
#define SPICE_SURFACE_FMT_1_A 1
#define SPICE_SURFACE_FMT_8_A 8
#define SPICE_SURFACE_FMT_16_555 16
#define SPICE_SURFACE_FMT_32_xRGB 32
#define SPICE_SURFACE_FMT_16_565 80
#define SPICE_SURFACE_FMT_32_ARGB 96
#define SPICE_CURSOR_TYPE_ALPHA 0
#define SPICE_CURSOR_TYPE_MONO 1
#define SPICE_CURSOR_TYPE_COLOR4 2
#define SPICE_CURSOR_TYPE_COLOR8 3
#define SPICE_CURSOR_TYPE_COLOR16 4
#define SPICE_CURSOR_TYPE_COLOR24 5
#define SPICE_CURSOR_TYPE_COLOR32 6
#define SPICE_STRING_FLAGS_RASTER_A1 1
#define SPICE_STRING_FLAGS_RASTER_A4 2
#define SPICE_STRING_FLAGS_RASTER_A8 4
#define SPICE_STRING_FLAGS_RASTER_TOP_DOWN 8
#define SPICE_LINE_FLAGS_START_WITH_GAP 4
#define SPICE_LINE_FLAGS_STYLED 8
#define SPICE_ROPD_OP_PUT 8
#define SPICE_COMPOSITE_HAS_MASK 524288
#define SPICE_COMPOSITE_HAS_SRC_TRANSFORM 1048576
#define SPICE_COMPOSITE_HAS_MASK_TRANSFORM 2097152

/* --- ring sizes ---------------------------------------------------------- */
#define QXL_COMMAND_RING_SIZE 32
#define QXL_CURSOR_RING_SIZE 32
#define QXL_RELEASE_RING_SIZE 8
#define QXL_LOG_BUF_SIZE 4096

/* --- basic types --------------------------------------------------------- */
typedef uint64_t QXLPHYSICAL;
typedef int32_t QXLFIXED; /* 28.4 fixed point */

typedef struct QXLPointFix { QXLFIXED x; QXLFIXED y; } QXLPointFix;
typedef struct QXLPoint { int32_t x; int32_t y; } QXLPoint;
typedef struct QXLPoint16 { int16_t x; int16_t y; } QXLPoint16;
typedef struct QXLRect { int32_t top; int32_t left; int32_t bottom; int32_t right; } QXLRect;
typedef struct QXLURect { uint32_t top; uint32_t left; uint32_t bottom; uint32_t right; } QXLURect;

/* --- ROM ----------------------------------------------------------------- */
typedef struct QXLRom {
    uint32_t magic;
    uint32_t id;
    uint32_t update_id;
    uint32_t compression_level;
    uint32_t log_level;
    uint32_t mode;
    uint32_t modes_offset;
    uint32_t num_pages;
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
    struct {
        uint16_t count;
        uint16_t padding;
        QXLURect heads[64];
    } client_monitors_config;
} QXLRom;

typedef struct QXLMode {
    uint32_t id;
    uint32_t x_res;
    uint32_t y_res;
    uint32_t bits;
    uint32_t stride;
    uint32_t x_mili;
    uint32_t y_mili;
    uint32_t orientation;
} QXLMode;

typedef struct QXLModes {
    uint32_t n_modes;
    QXLMode modes[0];
} QXLModes;

/* vgpu's ROM extension block; see the top of this file. */
#define VGPU_ROM_EXT_OFFSET 1280
#define VGPU_ROM_EXT_MAGIC 0x55504756
#define VGPU_ROM_EXT_VERSION 1
#define VGPU_FEATURE_INPUT_RING 1
#define VGPU_FEATURE_3D_RING 2
typedef struct VgpuRomExt {
    uint32_t magic;            /* VGPU_ROM_EXT_MAGIC ("VGPU") */
    uint32_t version;          /* VGPU_ROM_EXT_VERSION */
    uint64_t features;         /* VGPU_FEATURE_* bits the device offers */
    uint32_t input_ring_offset;  /* RAM-bar offset of VgpuInputRing */
    uint32_t input_dropped;    /* input events dropped because the ring was full */
    uint32_t gl_ring_offset;   /* RAM-bar offset of Vgpu3dRing (VGPU_FEATURE_3D_RING) */
    uint32_t gl_fence_offset;  /* RAM-bar offset of Vgpu3dFence */
    uint32_t gl_max_batch;     /* largest batch the device takes, in bytes */
    uint32_t gl_max_contexts;  /* context ids are 1 .. gl_max_contexts */
    uint32_t reserved[6];      /* zero; room for later extensions */
} VgpuRomExt;

/* --- commands and rings -------------------------------------------------- */
typedef struct QXLCommand {
    QXLPHYSICAL data;
    uint32_t type;
    uint32_t padding;
} QXLCommand;

typedef struct QXLCommandExt {
    QXLCommand cmd;
    uint32_t group_id;
    uint32_t flags;
} QXLCommandExt;

typedef struct QXLMemSlot {
    uint64_t mem_start;
    uint64_t mem_end;
} QXLMemSlot;

typedef struct QXLSurfaceCreate {
    uint32_t width;
    uint32_t height;
    int32_t stride;
    uint32_t format;
    uint32_t position;
    uint32_t mouse_mode;
    uint32_t flags;
    uint32_t type;
    QXLPHYSICAL mem;
} QXLSurfaceCreate;

/* Rings as spice's ipc_ring.h declares them: element slots padded to a power
 * of two (QXLCommand is 16 bytes and uint64_t 8, so no padding here). */
typedef struct QXLCommandRing_ring_el {
    union { QXLCommand el; uint8_t data[16]; };
} QXLCommandRing_ring_el;
typedef struct QXLCommandRing {
    uint32_t num_items;
    uint32_t prod;
    uint32_t notify_on_prod;
    uint32_t cons;
    uint32_t notify_on_cons;
    QXLCommandRing_ring_el items[32];
} QXLCommandRing;

typedef struct QXLCursorRing_ring_el {
    union { QXLCommand el; uint8_t data[16]; };
} QXLCursorRing_ring_el;
typedef struct QXLCursorRing {
    uint32_t num_items;
    uint32_t prod;
    uint32_t notify_on_prod;
    uint32_t cons;
    uint32_t notify_on_cons;
    QXLCursorRing_ring_el items[32];
} QXLCursorRing;

typedef struct QXLReleaseRing_ring_el {
    union { uint64_t el; uint8_t data[8]; };
} QXLReleaseRing_ring_el;
typedef struct QXLReleaseRing {
    uint32_t num_items;
    uint32_t prod;
    uint32_t notify_on_prod;
    uint32_t cons;
    uint32_t notify_on_cons;
    QXLReleaseRing_ring_el items[8];
} QXLReleaseRing;

/* qxl_dev.h aligns QXLRam to 4; its size is a multiple of 4 already. */
typedef struct QXLRam {
    uint32_t magic;
    uint32_t int_pending;
    uint32_t int_mask;
    uint8_t log_buf[4096];
    QXLCommandRing cmd_ring;
    QXLCursorRing cursor_ring;
    QXLReleaseRing release_ring;
    QXLRect update_area;
    uint32_t update_surface;
    QXLMemSlot mem_slot;
    QXLSurfaceCreate create_surface;
    uint64_t flags;
    QXLPHYSICAL monitors_config;
} QXLRam;

/* vgpu's input ring (VGPU_FEATURE_INPUT_RING). kind: VGPU_INPUT_* */
#define VGPU_INPUT_RING_SIZE 64
#define VGPU_INPUT_KEY_DOWN 1
#define VGPU_INPUT_KEY_UP 2
#define VGPU_INPUT_MOUSE_POSITION 3
#define VGPU_INPUT_MOUSE_MOTION 4
#define VGPU_INPUT_MOUSE_PRESS 5
#define VGPU_INPUT_MOUSE_RELEASE 6
#define VGPU_INPUT_MODIFIERS 7
typedef struct VgpuInputEvent {
    uint32_t kind;
    uint32_t code;
    int32_t x;
    int32_t y;
    uint32_t buttons;
    uint32_t display;
    uint32_t reserved[2];
} VgpuInputEvent;
typedef struct VgpuInputRing {
    uint32_t num_items;
    uint32_t prod;
    uint32_t notify_on_prod;
    uint32_t cons;
    uint32_t notify_on_cons;
    uint32_t padding[3];
    VgpuInputEvent items[64];
} VgpuInputRing;

/* vgpu's 3D ring (VGPU_FEATURE_3D_RING; docs/3d-ring.md). A ring item names one
 * batch of 3D commands in guest memory; the device copies the batch before it
 * parses it, so the guest may reuse the memory once `cons` has passed the item. */
#define VGPU_3D_RING_SIZE 64
#define VGPU_3D_SURFACE_DEPTH 1
#define VGPU_3D_SURFACE_STENCIL 2
#define VGPU_3D_FENCE_INTERRUPT 1
typedef struct Vgpu3dSubmit {
    QXLPHYSICAL batch;         /* first command word */
    uint32_t size;             /* bytes, a multiple of 4, at most gl_max_batch */
    uint32_t flags;            /* zero */
} Vgpu3dSubmit;
typedef struct Vgpu3dRing {
    uint32_t num_items;
    uint32_t prod;
    uint32_t notify_on_prod;
    uint32_t cons;
    uint32_t notify_on_cons;
    uint32_t padding[3];
    Vgpu3dSubmit items[64];
} Vgpu3dRing;
typedef struct Vgpu3dFence {
    uint64_t completed;        /* value of the last FENCE the device has executed */
    uint32_t lost_contexts;    /* contexts put in the lost state since RESET */
    uint32_t errors;           /* 3D commands refused since RESET (all contexts) */
} Vgpu3dFence;

typedef union QXLReleaseInfo {
    uint64_t id;
    uint64_t next;
} QXLReleaseInfo;

typedef struct QXLDataChunk {
    uint32_t data_size;
    QXLPHYSICAL prev_chunk;
    QXLPHYSICAL next_chunk;
    uint8_t data[0];
} QXLDataChunk;

typedef struct QXLMessage {
    QXLReleaseInfo release_info;
    uint8_t data[0];
} QXLMessage;

typedef struct QXLCompatUpdateCmd {
    QXLReleaseInfo release_info;
    QXLRect area;
    uint32_t update_id;
} QXLCompatUpdateCmd;

typedef struct QXLUpdateCmd {
    QXLReleaseInfo release_info;
    QXLRect area;
    uint32_t update_id;
    uint32_t surface_id;
} QXLUpdateCmd;

/* --- cursor -------------------------------------------------------------- */
typedef struct QXLCursorHeader {
    uint64_t unique;
    uint16_t type;
    uint16_t width;
    uint16_t height;
    uint16_t hot_spot_x;
    uint16_t hot_spot_y;
} QXLCursorHeader;

typedef struct QXLCursor {
    QXLCursorHeader header;
    uint32_t data_size;
    QXLDataChunk chunk;
} QXLCursor;

typedef struct QXLCursorCmd {
    QXLReleaseInfo release_info;
    uint8_t type;
    union {
        struct {
            QXLPoint16 position;
            uint8_t visible;
            QXLPHYSICAL shape;
        } set;
        struct {
            uint16_t length;
            uint16_t frequency;
        } trail;
        QXLPoint16 position;
    } u;
    uint8_t device_data[128];
} QXLCursorCmd;

/* --- drawing ------------------------------------------------------------- */
typedef struct QXLRasterGlyph {
    QXLPoint render_pos;
    QXLPoint glyph_origin;
    uint16_t width;
    uint16_t height;
    uint8_t data[0];
} QXLRasterGlyph;

typedef struct QXLString {
    uint32_t data_size;
    uint16_t length;
    uint16_t flags;
    QXLDataChunk chunk;
} QXLString;

typedef struct QXLCopyBits {
    QXLPoint src_pos;
} QXLCopyBits;

typedef struct QXLPattern {
    QXLPHYSICAL pat;
    QXLPoint pos;
} QXLPattern;

typedef struct QXLBrush {
    uint32_t type;
    union {
        uint32_t color;
        QXLPattern pattern;
    } u;
} QXLBrush;

typedef struct QXLQMask {
    uint8_t flags;
    QXLPoint pos;
    QXLPHYSICAL bitmap;
} QXLQMask;

typedef struct QXLFill {
    QXLBrush brush;
    uint16_t rop_descriptor;
    QXLQMask mask;
} QXLFill;

typedef struct QXLOpaque {
    QXLPHYSICAL src_bitmap;
    QXLRect src_area;
    QXLBrush brush;
    uint16_t rop_descriptor;
    uint8_t scale_mode;
    QXLQMask mask;
} QXLOpaque;

typedef struct QXLCopy {
    QXLPHYSICAL src_bitmap;
    QXLRect src_area;
    uint16_t rop_descriptor;
    uint8_t scale_mode;
    QXLQMask mask;
} QXLCopy;
typedef QXLCopy QXLBlend;

typedef struct QXLTransparent {
    QXLPHYSICAL src_bitmap;
    QXLRect src_area;
    uint32_t src_color;
    uint32_t true_color;
} QXLTransparent;

typedef struct QXLAlphaBlend {
    uint16_t alpha_flags;
    uint8_t alpha;
    QXLPHYSICAL src_bitmap;
    QXLRect src_area;
} QXLAlphaBlend;

typedef struct QXLCompatAlphaBlend {
    uint8_t alpha;
    QXLPHYSICAL src_bitmap;
    QXLRect src_area;
} QXLCompatAlphaBlend;

typedef struct QXLRop3 {
    QXLPHYSICAL src_bitmap;
    QXLRect src_area;
    QXLBrush brush;
    uint8_t rop3;
    uint8_t scale_mode;
    QXLQMask mask;
} QXLRop3;

typedef struct QXLLineAttr {
    uint8_t flags;
    uint8_t join_style;
    uint8_t end_style;
    uint8_t style_nseg;
    QXLFIXED width;
    QXLFIXED miter_limit;
    QXLPHYSICAL style;
} QXLLineAttr;

typedef struct QXLStroke {
    QXLPHYSICAL path;
    QXLLineAttr attr;
    QXLBrush brush;
    uint16_t fore_mode;
    uint16_t back_mode;
} QXLStroke;

typedef struct QXLText {
    QXLPHYSICAL str;
    QXLRect back_area;
    QXLBrush fore_brush;
    QXLBrush back_brush;
    uint16_t fore_mode;
    uint16_t back_mode;
} QXLText;

typedef struct QXLBlackness {
    QXLQMask mask;
} QXLBlackness;
typedef QXLBlackness QXLInvers;
typedef QXLBlackness QXLWhiteness;

typedef struct QXLClip {
    uint32_t type;
    QXLPHYSICAL data;
} QXLClip;

typedef struct QXLTransform {
    uint32_t t00;
    uint32_t t01;
    uint32_t t02;
    uint32_t t10;
    uint32_t t11;
    uint32_t t12;
} QXLTransform;

typedef struct QXLComposite {
    uint32_t flags;
    QXLPHYSICAL src;
    QXLPHYSICAL src_transform;
    QXLPHYSICAL mask;
    QXLPHYSICAL mask_transform;
    QXLPoint16 src_origin;
    QXLPoint16 mask_origin;
} QXLComposite;

typedef struct QXLCompatDrawable {
    QXLReleaseInfo release_info;
    uint8_t effect;
    uint8_t type;
    uint16_t bitmap_offset;
    QXLRect bitmap_area;
    QXLRect bbox;
    QXLClip clip;
    uint32_t mm_time;
    union {
        QXLFill fill;
        QXLOpaque opaque;
        QXLCopy copy;
        QXLTransparent transparent;
        QXLCompatAlphaBlend alpha_blend;
        QXLCopyBits copy_bits;
        QXLBlend blend;
        QXLRop3 rop3;
        QXLStroke stroke;
        QXLText text;
        QXLBlackness blackness;
        QXLInvers invers;
        QXLWhiteness whiteness;
    } u;
} QXLCompatDrawable;

typedef struct QXLDrawable {
    QXLReleaseInfo release_info;
    uint32_t surface_id;
    uint8_t effect;
    uint8_t type;
    uint8_t self_bitmap;
    QXLRect self_bitmap_area;
    QXLRect bbox;
    QXLClip clip;
    uint32_t mm_time;
    int32_t surfaces_dest[3];
    QXLRect surfaces_rects[3];
    union {
        QXLFill fill;
        QXLOpaque opaque;
        QXLCopy copy;
        QXLTransparent transparent;
        QXLAlphaBlend alpha_blend;
        QXLCopyBits copy_bits;
        QXLBlend blend;
        QXLRop3 rop3;
        QXLStroke stroke;
        QXLText text;
        QXLBlackness blackness;
        QXLInvers invers;
        QXLWhiteness whiteness;
        QXLComposite composite;
    } u;
} QXLDrawable;

/* --- surfaces ------------------------------------------------------------ */
typedef struct QXLSurface {
    uint32_t format;
    uint32_t width;
    uint32_t height;
    int32_t stride;
    QXLPHYSICAL data;
} QXLSurface;

typedef struct QXLSurfaceCmd {
    QXLReleaseInfo release_info;
    uint32_t surface_id;
    uint8_t type;
    uint32_t flags;
    union {
        QXLSurface surface_create;
    } u;
} QXLSurfaceCmd;

typedef struct QXLClipRects {
    uint32_t num_rects;
    QXLDataChunk chunk;
} QXLClipRects;

typedef struct QXLPathSeg {
    uint32_t flags;
    uint32_t count;
    QXLPointFix points[0];
} QXLPathSeg;

typedef struct QXLPath {
    uint32_t data_size;
    QXLDataChunk chunk;
} QXLPath;

/* --- images -------------------------------------------------------------- */
typedef struct QXLImageID {
    uint32_t group;
    uint32_t unique;
} QXLImageID;

typedef struct QXLImageDescriptor {
    uint64_t id;
    uint8_t type;
    uint8_t flags;
    uint32_t width;
    uint32_t height;
} QXLImageDescriptor;

typedef struct QXLPalette {
    uint64_t unique;
    uint16_t num_ents;
    uint32_t ents[0];
} QXLPalette;

typedef struct QXLBitmap {
    uint8_t format;
    uint8_t flags;
    uint32_t x;
    uint32_t y;
    uint32_t stride;
    QXLPHYSICAL palette;
    QXLPHYSICAL data;
} QXLBitmap;

typedef struct QXLSurfaceId {
    uint32_t surface_id;
} QXLSurfaceId;

typedef struct QXLQUICData {
    uint32_t data_size;
    uint8_t data[0];
} QXLQUICData;
typedef QXLQUICData QXLLZRGBData;
typedef QXLQUICData QXLJPEGData;

typedef struct QXLImage {
    QXLImageDescriptor descriptor;
    union {
        QXLBitmap bitmap;
        QXLQUICData quic;
        QXLSurfaceId surface_image;
    };
} QXLImage;

/* --- monitors ------------------------------------------------------------ */
typedef struct QXLHead {
    uint32_t id;
    uint32_t surface_id;
    uint32_t width;
    uint32_t height;
    uint32_t x;
    uint32_t y;
    uint32_t flags;
} QXLHead;

typedef struct QXLMonitorsConfig {
    uint16_t count;
    uint16_t max_allowed;
    QXLHead heads[0];
} QXLMonitorsConfig;

#pragma pack(pop)

/* Atomic helpers for the interrupt word the guest and the device share
 * (the guest's driver takes int_pending with an atomic exchange) and for the
 * 3D fence value. */
uint32_t vgpu_atomic_or32(uint32_t *p, uint32_t v);
uint32_t vgpu_atomic_xchg32(uint32_t *p, uint32_t v);
uint32_t vgpu_atomic_load32(uint32_t *p);
void vgpu_atomic_store32(uint32_t *p, uint32_t v);
/* Vgpu3dFence.completed: 8-byte aligned, written and read as one word. */
uint64_t vgpu_atomic_load64(uint64_t *p);
void vgpu_atomic_store64(uint64_t *p, uint64_t v);
/* Spin (for at most max_ns, less when another thread wants the core) until *p >= value /
 * while *p == value; the value last read. */
uint64_t vgpu_spin_until64(uint64_t *p, uint64_t value, uint64_t max_ns);
uint32_t vgpu_spin_while32(uint32_t *p, uint32_t value, uint64_t max_ns);
/* A word threads of one process sleep on (w[0] the value, w[1] its sleepers): sleep while
 * it holds `value`, at most timeout_ns (returns the value last read); set it, waking the
 * sleepers. */
uint32_t vgpu_word_wait(uint32_t *w, uint32_t value, uint64_t timeout_ns);
void vgpu_word_set(uint32_t *w, uint32_t value);

/* The 3D watchdog's last resort, a C thread that needs no Python lock: once started,
 * if 3D work marked busy stays busy longer than limit_ns, it writes one line to
 * stderr and ends the process with exit_status (a GL call that blocks while holding
 * the interpreter lock would otherwise freeze the process for good). */
int vgpu_watchdog_start(uint64_t limit_ns, int exit_status);
void vgpu_watchdog_busy(void);
void vgpu_watchdog_idle(void);

#endif
