/* packet.c - accepting or refusing one datagram as a JUNGFRAU packet.
 *
 * Every datagram on a data port passes through here before it may touch a
 * frame buffer, so a garbage datagram can at worst be counted, never written
 * to the wrong place. */
#include "morgul/jungfrau.h"

mg_packet_verdict mg_packet_check(const void *buf, size_t len, unsigned packets_per_interface,
                                  const mg_jf_header **hdr, const uint8_t **pixels)
{
    const uint8_t *p = buf;
    if (len == MG_LEGACY_PACKET_BYTES)
        p += MG_LEGACY_PREFIX_BYTES;
    else if (len != MG_PACKET_BYTES)
        return MG_PACKET_BAD_SIZE;
    const mg_jf_header *h = (const mg_jf_header *)p;
    if (h->detector_type != MG_DETECTOR_TYPE_JUNGFRAU)
        return MG_PACKET_BAD_TYPE;
    if (h->version != MG_HEADER_VERSION)
        return MG_PACKET_BAD_VERSION;
    if (h->packet_number >= packets_per_interface)
        return MG_PACKET_BAD_NUMBER;
    *hdr = h;
    *pixels = p + MG_HEADER_BYTES;
    return MG_PACKET_OK;
}

const char *mg_packet_verdict_name(mg_packet_verdict v)
{
    switch (v) {
    case MG_PACKET_OK: return "accepted";
    case MG_PACKET_BAD_SIZE: return "wrong size";
    case MG_PACKET_BAD_TYPE: return "not a JUNGFRAU packet (detector type)";
    case MG_PACKET_BAD_VERSION: return "unknown header version";
    case MG_PACKET_BAD_NUMBER: return "packet number out of range";
    case MG_PACKET_BAD_POSITION: return "header row/column do not match the configuration";
    case MG_PACKET_BAD_FRAME: return "implausible frame number";
    default: return "?";
    }
}
