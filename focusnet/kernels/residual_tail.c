/* The tail of a ResGANet block in training: out = leaky_relu(y * A[n,c] + B[n,c] + skip).
 *
 * y is the output 1x1 convolution before its BatchNorm; A and B hold that BatchNorm (batch
 * statistics) and the squeeze-and-excitation scale folded per image and channel:
 * A = scale * s, B = shift * s, with s = 1 without SE. The statistics both need are per-image,
 * per-channel sums of y, which one pass collects (nc_sums). PyTorch would run BatchNorm (two
 * passes), the SE pooling, the SE product, the residual sum and the activation as separate
 * full-size passes, each with a full-size backward.
 *
 * Tensors are channels_last: (N*HW, C) row-major float32; row m belongs to image m / HW.
 * Sums are accumulated in double around a per-channel centre, per thread, then reduced.
 * Threads as in bn_leaky_relu.c: contiguous row ranges, OpenMP sharing torch's libgomp.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TAIL_MAX_THREADS 256
#define TAIL_MIN_ROWS 1024 /* rows per thread below which one thread does it all */

static int tail_threads(int nthreads, int64_t M) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads > TAIL_MAX_THREADS) nthreads = TAIL_MAX_THREADS;
    if (M < (int64_t)nthreads * TAIL_MIN_ROWS) nthreads = 1;
    return nthreads;
}

/* out1[i], out2[i] = sums over threads of each thread's (2 * NC) accumulator block. */
static void reduce_pairs(const double *acc, int nt, int64_t NC, double *out1, double *out2) {
    for (int64_t i = 0; i < NC; ++i) {
        double x1 = 0.0, x2 = 0.0;
        for (int t = 0; t < nt; ++t) {
            x1 += acc[(size_t)t * 2 * NC + i];
            x2 += acc[(size_t)t * 2 * NC + NC + i];
        }
        out1[i] = x1;
        out2[i] = x2;
    }
}

/* Per-image, per-channel pair sums over the HW pixels of each image n, centred per channel:
 * gout == NULL: s1 = sum (y - centre), s2 = sum (y - centre)^2;
 * otherwise, with g = gout * leaky_relu'(out): s1 = sum g * (y - centre), s2 = sum g. */
static int nc_pair_sums(const float *y, const float *gout, const float *out, const float *centre,
                        int64_t N, int64_t HW, int64_t C, float slope, double *s1, double *s2, int nthreads) {
    const int64_t M = N * HW, NC = N * C;
    int nt = tail_threads(nthreads, M);
    double *acc = (double *)calloc((size_t)nt * 2 * (size_t)NC, sizeof(double));
    if (!acc) return -1;
    int64_t step = (M + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int t = 0; t < nt; ++t) {
        double *a1 = acc + (size_t)t * 2 * (size_t)NC, *a2 = a1 + NC;
        int64_t m0 = t * step, m1 = m0 + step < M ? m0 + step : M;
        for (int64_t m = m0; m < m1; ++m) {
            const float *yr = y + m * C;
            double *r1 = a1 + (m / HW) * C, *r2 = a2 + (m / HW) * C;
            if (gout == NULL) {
                for (int64_t c = 0; c < C; ++c) {
                    double v = (double)yr[c] - (double)centre[c];
                    r1[c] += v;
                    r2[c] += v * v;
                }
            } else {
                const float *go = gout + m * C, *o = out + m * C;
                for (int64_t c = 0; c < C; ++c) {
                    float g = o[c] > 0.0f ? go[c] : go[c] * slope;
                    r1[c] += (double)g * ((double)yr[c] - (double)centre[c]);
                    r2[c] += (double)g;
                }
            }
        }
    }
    reduce_pairs(acc, nt, NC, s1, s2);
    free(acc);
    return 0;
}

/* s1[n,c] = sum_p (y - centre[c]), s2[n,c] = sum_p (y - centre[c])^2 over the HW pixels of image n. */
int fn_nc_sums(const float *y, int64_t N, int64_t HW, int64_t C, const float *centre, double *s1,
               double *s2, int nthreads) {
    return nc_pair_sums(y, NULL, NULL, centre, N, HW, C, 0.0f, s1, s2, nthreads);
}

/* With g = d out * leaky_relu'(out): gA[n,c] = sum_p g * (y - centre[c]), gB[n,c] = sum_p g. */
int fn_tail_grad_sums(const float *gout, const float *out, const float *y, const float *centre,
                      int64_t N, int64_t HW, int64_t C, float slope, double *gA, double *gB, int nthreads) {
    return nc_pair_sums(y, gout, out, centre, N, HW, C, slope, gA, gB, nthreads);
}

/* out = leaky_relu(y * A[n,c] + B[n,c] + skip); skip may be NULL. */
int fn_tail_forward(const float *y, const float *skip, const float *A, const float *B, float *out,
                    int64_t N, int64_t HW, int64_t C, float slope, int nthreads) {
    const int64_t M = N * HW;
    int nt = tail_threads(nthreads, M);
    int64_t step = (M + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int t = 0; t < nt; ++t) {
        int64_t m0 = t * step, m1 = m0 + step < M ? m0 + step : M;
        for (int64_t m = m0; m < m1; ++m) {
            const float *restrict yr = y + m * C, *restrict a = A + (m / HW) * C, *restrict b = B + (m / HW) * C;
            float *restrict o = out + m * C;
            if (skip) {
                const float *restrict sr = skip + m * C;
                for (int64_t c = 0; c < C; ++c) {
                    float z = yr[c] * a[c] + b[c] + sr[c];
                    o[c] = z > 0.0f ? z : z * slope;
                }
            } else {
                for (int64_t c = 0; c < C; ++c) {
                    float z = yr[c] * a[c] + b[c];
                    o[c] = z > 0.0f ? z : z * slope;
                }
            }
        }
    }
    return 0;
}

/* One row of the backward: restrict-qualified parameters so the compiler vectorises it. */
static void tail_backward_row(const float *restrict go, const float *restrict o, const float *restrict yr,
                              const float *restrict a, const float *restrict k0, const float *restrict k1,
                              const float *restrict ctr, float *restrict gyr, float *restrict gsr,
                              int64_t C, float slope) {
    if (gsr) {
        for (int64_t c = 0; c < C; ++c) {
            float g = o[c] > 0.0f ? go[c] : go[c] * slope;
            gyr[c] = g * a[c] + k0[c] + k1[c] * (yr[c] - ctr[c]);
            gsr[c] = g;
        }
    } else {
        for (int64_t c = 0; c < C; ++c) {
            float g = o[c] > 0.0f ? go[c] : go[c] * slope;
            gyr[c] = g * a[c] + k0[c] + k1[c] * (yr[c] - ctr[c]);
        }
    }
}

/* gy = g * A[n,c] + K0[n,c] + K1[n,c] * (y - centre[c]); gskip = g (when not NULL). */
int fn_tail_backward(const float *gout, const float *out, const float *y, const float *A,
                     const float *K0, const float *K1, const float *centre, float *gy, float *gskip,
                     int64_t N, int64_t HW, int64_t C, float slope, int nthreads) {
    const int64_t M = N * HW;
    int nt = tail_threads(nthreads, M);
    int64_t step = (M + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int t = 0; t < nt; ++t) {
        int64_t m0 = t * step, m1 = m0 + step < M ? m0 + step : M;
        for (int64_t m = m0; m < m1; ++m) {
            const int64_t nc = (m / HW) * C;
            tail_backward_row(gout + m * C, out + m * C, y + m * C, A + nc, K0 + nc, K1 + nc, centre,
                              gy + m * C, gskip ? gskip + m * C : NULL, C, slope);
        }
    }
    return 0;
}
