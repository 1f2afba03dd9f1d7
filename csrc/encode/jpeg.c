/* JPEG (JFIF) through libjpeg-turbo, reading B,G,R,X rows in place
 * (JCS_EXT_BGRX), 4:2:0 like spice-server's encoder. */
/* jpeglib.h needs size_t and FILE declared first */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

#include "encode_common.h"

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    /* The output buffer lives here, not in a register, so that it can be
     * freed after a longjmp (jpeg_mem_dest may have reallocated it). */
    unsigned char *buf;
    unsigned long size;
} JpegError;

static void on_error(j_common_ptr cinfo)
{
    /* libjpeg's default handler exit()s the process: unwind to our caller. */
    longjmp(((JpegError *)(void *)cinfo->err)->jump, 1);
}

static void on_message(j_common_ptr cinfo)
{
    (void)cinfo; /* warnings are not worth stderr noise in a server */
}

long vgpu_jpeg_encode(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                      int quality, uint8_t **out)
{
    if (!frame_ok(pixels, stride, width, height) || !out || quality < 1 || quality > 100) {
        return VGPU_ENC_ERR_ARGS;
    }
    struct jpeg_compress_struct cinfo;
    JpegError err;
    *out = NULL;
    err.buf = NULL;
    err.size = 0;

    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = on_error;
    err.mgr.output_message = on_message;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(err.buf);
        return VGPU_ENC_ERR_CODEC;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &err.buf, &err.size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = 4;
    cinfo.in_color_space = JCS_EXT_BGRX;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    cinfo.dct_method = JDCT_ISLOW;
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (ptrdiff_t)cinfo.next_scanline * stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = err.buf;
    return (long)err.size;
}

void vgpu_encode_free(void *p)
{
    free(p);
}
