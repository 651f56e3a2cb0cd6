/* sim_content.h - private: what the simulator puts in each module frame. */
#ifndef MORGUL_SIM_CONTENT_H
#define MORGUL_SIM_CONTENT_H

#include "morgul/simulate.h"

typedef struct sim_content sim_content;

sim_content *sim_content_new(const mg_sim_config *cfg, mg_error *err);
void sim_content_free(sim_content *c);
/* Fills out (512 x 1024 words) with module m's frame k (0-based; frame
 * number first_frame + k); returns the DAQ info bits the frame carries. */
uint32_t sim_content_frame(sim_content *c, int m, uint64_t k, uint16_t *out);

/* photons: the whole photons of each pixel in the frame last made (512 x
 * 1024 int32), or NULL for other content. */
const int32_t *sim_content_truth(const sim_content *c);

#endif
