/* morgul/png.h - pictures for people: 8-bit RGB PNG files (zlib deflate),
 * a colour scale, and a small bitmap font for numbers and labels on them.
 * Used by `morgul calib show --png` to show calibration constants and by
 * the service's live preview. */
#ifndef MORGUL_PNG_H
#define MORGUL_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "morgul/error.h"

/* Writes w x h pixels of RGB (3 bytes each, rows top to bottom) to path
 * (replacing it). */
int mg_png_write_rgb(const char *path, int w, int h, const uint8_t *rgb, mg_error *err);

/* The same PNG in memory: *out (malloc'ed, the caller frees it) of *len
 * bytes. */
int mg_png_encode_rgb(int w, int h, const uint8_t *rgb, uint8_t **out, size_t *len, mg_error *err);

/* The colour of t in [0, 1] on a dark-blue -> green -> yellow scale (t is
 * clamped), into rgb[3]. */
void mg_png_colour(double t, uint8_t *rgb);

/* Draws text (digits, letters A-Z/a-z as capitals, space . - + : / = % ( ) _)
 * with its top-left corner at x, y, glyphs 5 x 7 scaled by `scale`; pixels
 * outside the image are skipped.  Returns the width drawn. */
int mg_png_text(uint8_t *rgb, int w, int h, int x, int y, const char *text, int scale, const uint8_t *colour);

#endif
