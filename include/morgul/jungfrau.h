/* morgul/jungfrau.h - the JUNGFRAU detector's packet and pixel format.
 *
 * Facts only (sizes, header layout, pixel word), shared by the simulator, the
 * receiver and replay.  A module is 512 rows x 1024 columns of uint16 words.
 * It sends one UDP datagram per 4 rows: 128 packets per frame on one
 * interface, or 64 per interface with two (the first carries module rows
 * 0-255, the second rows 256-511).  Packet p of an interface carries that
 * interface's rows 4p..4p+3.  Inside morgul a "module packet index"
 * q = interface * 64 + p (two interfaces) or q = p (one) always covers module
 * rows 4q..4q+3, so bitmasks look the same for both layouts.
 */
#ifndef MORGUL_JUNGFRAU_H
#define MORGUL_JUNGFRAU_H

#include <stddef.h>
#include <stdint.h>

#define MG_MODULE_ROWS 512
#define MG_MODULE_COLS 1024
#define MG_MODULE_PIXELS (MG_MODULE_ROWS * MG_MODULE_COLS)
#define MG_MODULE_BYTES (MG_MODULE_PIXELS * 2)
#define MG_ROWS_PER_PACKET 4
#define MG_PACKET_DATA_BYTES (MG_ROWS_PER_PACKET * MG_MODULE_COLS * 2) /* 8192 */
#define MG_HEADER_BYTES 48
#define MG_PACKET_BYTES (MG_HEADER_BYTES + MG_PACKET_DATA_BYTES)       /* 8240 */
#define MG_LEGACY_PREFIX_BYTES 6                                          /* old firmware */
#define MG_LEGACY_PACKET_BYTES (MG_PACKET_BYTES + MG_LEGACY_PREFIX_BYTES) /* 8246 */
#define MG_PACKETS_PER_MODULE 128
#define MG_MAX_INTERFACES 2
#define MG_DETECTOR_TYPE_JUNGFRAU 3
#define MG_HEADER_VERSION 2

/* The packet header (little-endian on the wire; morgul runs on x86-64 and
 * aarch64, both little-endian, so it is read in place). */
typedef struct __attribute__((packed)) mg_jf_header {
    uint64_t frame_number;
    uint32_t exposure_length; /* 0.1 us units */
    uint32_t packet_number;
    uint64_t bunch_id;
    uint64_t timestamp; /* 10 MHz clock */
    uint16_t module_id;
    uint16_t row;
    uint16_t column;
    uint16_t reserved;
    uint32_t daq_info;
    uint16_t round_robin;
    uint8_t detector_type;
    uint8_t version;
} mg_jf_header;

_Static_assert(sizeof(mg_jf_header) == MG_HEADER_BYTES, "JUNGFRAU header is 48 bytes");

/* DAQ info bits. */
#define MG_DAQ_HIGH_GAIN (1u << 0)
#define MG_DAQ_FIXED_G1 (1u << 1)
#define MG_DAQ_FIXED_G2 (1u << 2)
#define MG_DAQ_COMPARATOR_RESET (1u << 4)
#define MG_DAQ_STORAGE_CELL(d) (((d) >> 8) & 0xFu)
/* Storage cells (burst mode): a module has up to 16; the cell a frame was
 * stored in is its DAQ info's bits 8-11. */
#define MG_CELLS_MAX 16
#define MG_DAQ_FORCE_G1 (1u << 12)
#define MG_DAQ_FORCE_G2 (1u << 13)

/* The pixel word: bits 15-14 gain (00 G0, 01 G1, 11 G2, 10 invalid), 13-0 ADC. */
#define MG_PIXEL_GAIN(w) ((unsigned)(w) >> 14)
#define MG_PIXEL_ADC(w) ((unsigned)(w)&0x3FFFu)
#define MG_GAIN_BITS_G0 0u
#define MG_GAIN_BITS_G1 1u
#define MG_GAIN_BITS_G2 3u
#define MG_WORD_SATURATED 0xC000u
/* What morgul writes into the pixels of packets that never arrived (the
 * packet bitmask says which; 0xFFFF is an error word a detector never sends
 * for a good pixel). */
#define MG_WORD_MISSING 0xFFFFu

/* Why a datagram was not accepted as a packet of this link. */
typedef enum mg_packet_verdict {
    MG_PACKET_OK = 0,
    MG_PACKET_BAD_SIZE,     /* not 8240 (or legacy 8246) bytes */
    MG_PACKET_BAD_TYPE,     /* detector type is not JUNGFRAU */
    MG_PACKET_BAD_VERSION,  /* header version is not 2 */
    MG_PACKET_BAD_NUMBER,   /* packet number out of range for the interface count */
    MG_PACKET_BAD_POSITION, /* header row/column differ from the configured ones */
    MG_PACKET_BAD_FRAME,    /* frame number implausibly far from the others */
    MG_PACKET_VERDICT_COUNT
} mg_packet_verdict;

/* Checks a UDP payload of `len` bytes.  On MG_PACKET_OK, *hdr points at the
 * header and *pixels at the 8192 bytes of pixel data inside `buf` (both
 * unaligned-safe to read with memcpy; x86 reads them in place).  A legacy
 * 8246-byte datagram is accepted: its 6-byte prefix is skipped.
 * `packets_per_interface` is 128 or 64 and bounds the packet number. */
mg_packet_verdict mg_packet_check(const void *buf, size_t len, unsigned packets_per_interface,
                                  const mg_jf_header **hdr, const uint8_t **pixels);

/* A short human name of a verdict ("wrong size"). */
const char *mg_packet_verdict_name(mg_packet_verdict v);

#endif
