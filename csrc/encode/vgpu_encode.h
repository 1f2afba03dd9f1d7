/* vgpu encoder core: damage tiles, SPICE LZ (RGB32/RGBA), SPICE QUIC (RGB32;
 * and a QUIC decoder for guest images),
 * SPICE-framed LZ4, JPEG, and I420 planes for video encoders.  Every function
 * takes a 32-bit B,G,R,X frame as a base pointer plus a row stride in bytes,
 * so a crop of a bigger frame needs no copy.  Functions never write past the capacity they are given and
 * return a negative VGPU_ENC_ERR_* code on any bad argument.
 *
 * This header is also fed to cffi's cdef (through csrc/cdef.py): keep it to
 * plain declarations and integer #defines. */
#ifndef VGPU_ENCODE_H
#define VGPU_ENCODE_H

#include <stddef.h>
#include <stdint.h>

/* Largest accepted width or height: SPICE surfaces are far smaller, and
 * 16384 * 16384 * 4 bytes still fits a signed 32-bit byte count, which keeps
 * every codec's internal arithmetic (and the LZ4 block API's int sizes) safe. */
#define VGPU_ENC_MAX_DIM 16384

/* Smallest tile edge vgpu_tiles_*() accept: below this the rectangle list
 * grows larger than the pixels it describes is worth. */
#define VGPU_ENC_MIN_TILE 8

#define VGPU_ENC_ERR_ARGS -1
#define VGPU_ENC_ERR_SPACE -2
#define VGPU_ENC_ERR_NOMEM -3
#define VGPU_ENC_ERR_CODEC -4
/* Decoder verdicts on a stream (hostile input, never a crash): */
#define VGPU_DEC_ERR_HEADER -5    /* not a stream of this codec or version */
#define VGPU_DEC_ERR_TYPE -6      /* an image type we do not decode */
#define VGPU_DEC_ERR_SIZE -7      /* size out of range, or not the one expected */
#define VGPU_DEC_ERR_TRUNCATED -8 /* the stream ends before the image */
#define VGPU_DEC_ERR_CORRUPT -9   /* a code no encoder writes (a run past the row) */

/* Tiles: compares two frames of the same size tile by tile and writes the
 * changed area as rectangles (left, top, right, bottom; right/bottom
 * exclusive) into rects, four int32 per rectangle.  Returns the rectangle
 * count (at most vgpu_tiles_max_rects()) or a negative error. */
int vgpu_tiles_max_rects(int width, int height, int tile);
int vgpu_tiles_changed(const uint8_t *prev, ptrdiff_t prev_stride,
                       const uint8_t *cur, ptrdiff_t cur_stride,
                       int width, int height, int tile,
                       int32_t *rects, int max_rects);

/* Solid tiles: for each tile x tile block (edge tiles smaller), in rows of
 * tiles, writes colours[i] = its first pixel's colour (0x00RRGGBB, the X byte
 * ignored) and solid[i] = 1 when every pixel of the block has that colour, else
 * 0.  Both arrays hold vgpu_tiles_max_rects() entries.  Returns the tile count
 * or a negative error. */
int vgpu_tiles_solid(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                     int tile, uint32_t *colours, uint8_t *solid, int max_tiles);

/* SPICE LZ (LZ_IMAGE_TYPE_RGB32 or, with with_alpha, LZ_IMAGE_TYPE_RGBA):
 * the stream from the "LZ  " magic on, top-down. */
size_t vgpu_lz_bound(int width, int height, int with_alpha);
long vgpu_lz_encode(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                    int with_alpha, uint8_t *out, size_t out_cap);

/* SPICE QUIC, QUIC_IMAGE_TYPE_RGB32: the stream from the "QUIC" magic on. */
size_t vgpu_quic_bound(int width, int height);
long vgpu_quic_encode_rgb32(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                            uint8_t *out, size_t out_cap);

/* QUIC decoding (QUIC_IMAGE_TYPE_* values of the stream header). */
#define VGPU_QUIC_TYPE_GRAY 1
#define VGPU_QUIC_TYPE_RGB16 2
#define VGPU_QUIC_TYPE_RGB24 3
#define VGPU_QUIC_TYPE_RGB32 4
#define VGPU_QUIC_TYPE_RGBA 5

/* Reads a QUIC stream's header (size bytes from the "QUIC" magic on):
 * returns 0 with its image type and size (each side 1..VGPU_ENC_MAX_DIM),
 * or a negative error; GRAY and unknown types are VGPU_DEC_ERR_TYPE. */
int vgpu_quic_decode_header(const uint8_t *data, size_t size, int *type, int *width,
                            int *height);

/* Decodes a QUIC stream whose header says width x height into B,G,R,A rows
 * of out (stride bytes apart): RGB32/RGB24/RGB16 give A = 0 (RGB16 widened
 * by bit replication), RGBA its alpha plane.  Returns the pixel count or a
 * negative error; out may hold a partial image after an error. */
long vgpu_quic_decode(const uint8_t *data, size_t size, uint8_t *out, ptrdiff_t stride,
                      int width, int height);

/* SPICE_IMAGE_TYPE_LZ4 payload: top-down flag byte, format byte
 * (SPICE_BITMAP_FMT_32BIT), then big-endian u32 block lengths each followed
 * by one liblz4 block of a linked block stream over the packed rows. */
size_t vgpu_lz4_bound(int width, int height);
long vgpu_lz4_encode_rgb32(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                           uint8_t *out, size_t out_cap);

/* JFIF via libjpeg-turbo.  On success *out is a malloc()ed buffer that the
 * caller releases with vgpu_encode_free(); returns its size. */
long vgpu_jpeg_encode(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                      int quality, uint8_t **out);
void vgpu_encode_free(void *p);

/* I420 for video encoders: Y (width x height), U and V (width/2 x height/2) planes,
 * each with its own row stride, from a frame of even width and height; BT.601
 * limited range.  Returns 0 or a negative error. */
int vgpu_bgrx_to_i420(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                      uint8_t *y, ptrdiff_t y_stride, uint8_t *u, ptrdiff_t u_stride,
                      uint8_t *v, ptrdiff_t v_stride);

#endif
