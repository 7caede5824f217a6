/* Training-mode BatchNorm followed by LeakyReLU, forward and backward, in one kernel each.
 *
 * Activations are channels_last: x is an (M, C) row-major float32 matrix, M = N*H*W pixels.
 * PyTorch runs BatchNorm and LeakyReLU as separate memory passes (and the backward of each writes a
 * full-size intermediate); at FocusNet++'s full resolution they are memory-bound, so fusing them
 * saves passes over 64 MiB tensors. Statistics are taken around a per-channel shift (the first
 * pixel's value), so the variance does not cancel catastrophically: summed in float over blocks of
 * BLOCK_ROWS rows (vectorised, 8 or 16 channels per instruction), each block's sums added to double
 * totals. Summing in double element by element made every pass compute-bound (a quarter of the
 * memory bandwidth at 128x128x32); the block sums keep float32 rounding to BLOCK_ROWS terms.
 * Row loops go through restrict-qualified helpers so the compiler vectorises them.
 *
 * Threads: the M rows are split into nthreads contiguous ranges, each with private accumulators,
 * run by OpenMP. The library links libgomp.so.1, the soname torch has already loaded, so it shares
 * torch's thread pool (separate pthreads competed with torch's spinning OpenMP workers and ran
 * slower with 2 threads than with 1). Without OpenMP the pragma is ignored and it runs serially.
 * Built by focusnet/kernels/__init__.py with the system C compiler; no Python or torch headers.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 256
#define BLOCK_ROWS 32 /* rows summed in float before the sums go into the double totals */

typedef struct {
    const float *x, *gy;
    float *y, *gx;
    int64_t m0, m1, C;
    const float *shift_c, *scale, *offset, *k1, *k0;
    float slope;
    double *acc; /* 2*C doubles, private to the thread */
    float *block; /* 2*C floats, private to the thread: one block's sums */
} task_t;

static void run_tasks(void *(*fn)(void *), task_t *tasks, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static, 1)
    for (int t = 0; t < nthreads; ++t) fn(&tasks[t]);
}

/* s[c] += sum_r (x[r,c] - shift[c]), ss[c] += sum_r (x[r,c] - shift[c])^2 over `rows` rows. */
static void sum_rows(const float *restrict x, int64_t rows, int64_t C, const float *restrict shift,
                     float *restrict s, float *restrict ss) {
    for (int64_t r = 0; r < rows; ++r) {
        const float *restrict row = x + r * C;
        for (int64_t c = 0; c < C; ++c) {
            float v = row[c] - shift[c];
            s[c] += v;
            ss[c] += v * v;
        }
    }
}

/* With g = gy * leaky_relu'(x * scale + offset): sg[c] += sum_r g, sgx[c] += sum_r g * (x - shift[c]). */
static void grad_sum_rows(const float *restrict x, const float *restrict gy, int64_t rows, int64_t C,
                          const float *restrict scale, const float *restrict offset,
                          const float *restrict shift, float slope, float *restrict sg, float *restrict sgx) {
    for (int64_t r = 0; r < rows; ++r) {
        const float *restrict row = x + r * C, *restrict grow = gy + r * C;
        for (int64_t c = 0; c < C; ++c) {
            float z = row[c] * scale[c] + offset[c];
            float g = z > 0.0f ? grow[c] : grow[c] * slope;
            sg[c] += g;
            sgx[c] += g * (row[c] - shift[c]);
        }
    }
}

static void add_block(double *restrict total, const float *restrict block, int64_t n) {
    for (int64_t i = 0; i < n; ++i) total[i] += (double)block[i];
}

static void *stats_worker(void *arg) {
    task_t *t = (task_t *)arg;
    const int64_t C = t->C;
    for (int64_t m = t->m0; m < t->m1; m += BLOCK_ROWS) {
        int64_t rows = t->m1 - m < BLOCK_ROWS ? t->m1 - m : BLOCK_ROWS;
        memset(t->block, 0, 2 * (size_t)C * sizeof(float));
        sum_rows(t->x + m * C, rows, C, t->shift_c, t->block, t->block + C);
        add_block(t->acc, t->block, 2 * C);
    }
    return NULL;
}

static void normalise_rows(const float *restrict x, float *restrict y, int64_t rows, int64_t C,
                           const float *restrict scale, const float *restrict offset, float slope) {
    for (int64_t r = 0; r < rows; ++r) {
        const float *restrict row = x + r * C;
        float *restrict out = y + r * C;
        for (int64_t c = 0; c < C; ++c) {
            float z = row[c] * scale[c] + offset[c];
            out[c] = z > 0.0f ? z : z * slope;
        }
    }
}

static void *normalise_worker(void *arg) {
    task_t *t = (task_t *)arg;
    normalise_rows(t->x + t->m0 * t->C, t->y + t->m0 * t->C, t->m1 - t->m0, t->C, t->scale, t->offset, t->slope);
    return NULL;
}

static void *grad_stats_worker(void *arg) {
    task_t *t = (task_t *)arg;
    const int64_t C = t->C;
    for (int64_t m = t->m0; m < t->m1; m += BLOCK_ROWS) {
        int64_t rows = t->m1 - m < BLOCK_ROWS ? t->m1 - m : BLOCK_ROWS;
        memset(t->block, 0, 2 * (size_t)C * sizeof(float));
        grad_sum_rows(t->x + m * C, t->gy + m * C, rows, C, t->scale, t->offset, t->shift_c, t->slope,
                      t->block, t->block + C);
        add_block(t->acc, t->block, 2 * C);
    }
    return NULL;
}

static void grad_input_rows(const float *restrict x, const float *restrict gy, float *restrict gx, int64_t rows,
                            int64_t C, const float *restrict scale, const float *restrict offset,
                            const float *restrict shift, const float *restrict k1, const float *restrict k0,
                            float slope) {
    for (int64_t r = 0; r < rows; ++r) {
        const float *restrict row = x + r * C, *restrict grow = gy + r * C;
        float *restrict out = gx + r * C;
        for (int64_t c = 0; c < C; ++c) {
            float z = row[c] * scale[c] + offset[c];
            float g = z > 0.0f ? grow[c] : grow[c] * slope;
            out[c] = scale[c] * g + k1[c] * (row[c] - shift[c]) + k0[c];
        }
    }
}

static void *grad_input_worker(void *arg) {
    task_t *t = (task_t *)arg;
    const int64_t o = t->m0 * t->C;
    grad_input_rows(t->x + o, t->gy + o, t->gx + o, t->m1 - t->m0, t->C, t->scale, t->offset, t->shift_c,
                    t->k1, t->k0, t->slope);
    return NULL;
}

static int split(task_t *tasks, int nthreads, int64_t M, int64_t C, double **acc_out) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    if (M < (int64_t)nthreads * 1024) nthreads = 1; /* small tensors: not worth a thread */
    /* per thread: 2*C double totals, then (after all of them) 2*C float block sums */
    double *acc = (double *)calloc((size_t)nthreads * 2 * (size_t)C, sizeof(double) + sizeof(float));
    if (!acc) return -1;
    float *blocks = (float *)(acc + (size_t)nthreads * 2 * (size_t)C);
    int64_t step = (M + nthreads - 1) / nthreads;
    for (int t = 0; t < nthreads; ++t) {
        int64_t m0 = t * step, m1 = m0 + step;
        if (m0 > M) m0 = M;
        if (m1 > M) m1 = M;
        tasks[t].m0 = m0;
        tasks[t].m1 = m1;
        tasks[t].C = C;
        tasks[t].acc = acc + (size_t)t * 2 * (size_t)C;
        tasks[t].block = blocks + (size_t)t * 2 * (size_t)C;
    }
    *acc_out = acc;
    return nthreads;
}

/* y = leaky_relu(batch_norm(x)); writes the batch mean, biased variance and 1/sqrt(var + eps). */
int fn_bn_lrelu_forward(const float *x, float *y, int64_t M, int64_t C, const float *weight,
                        const float *bias, double eps, float slope, float *mean_out, float *var_out,
                        float *invstd_out, int nthreads) {
    task_t tasks[MAX_THREADS];
    double *acc;
    float *buf = (float *)malloc(3 * (size_t)C * sizeof(float));
    if (!buf || M < 1) { free(buf); return -1; }
    float *shift_c = buf, *scale = buf + C, *offset = buf + 2 * C;
    memcpy(shift_c, x, (size_t)C * sizeof(float));
    memset(tasks, 0, sizeof(tasks));
    int n = split(tasks, nthreads, M, C, &acc);
    if (n < 0) { free(buf); return -1; }
    for (int t = 0; t < n; ++t) { tasks[t].x = x; tasks[t].shift_c = shift_c; }
    run_tasks(stats_worker, tasks, n);
    for (int64_t c = 0; c < C; ++c) {
        double s = 0.0, ss = 0.0;
        for (int t = 0; t < n; ++t) { s += tasks[t].acc[c]; ss += tasks[t].acc[C + c]; }
        double d = s / (double)M;
        double var = ss / (double)M - d * d;
        if (var < 0.0) var = 0.0;
        double mean = (double)shift_c[c] + d;
        double invstd = 1.0 / sqrt(var + eps);
        mean_out[c] = (float)mean;
        var_out[c] = (float)var;
        invstd_out[c] = (float)invstd;
        double sc = invstd * (double)weight[c];
        scale[c] = (float)sc;
        offset[c] = (float)((double)bias[c] - mean * sc);
    }
    for (int t = 0; t < n; ++t) { tasks[t].y = y; tasks[t].scale = scale; tasks[t].offset = offset; tasks[t].slope = slope; }
    run_tasks(normalise_worker, tasks, n);
    free(acc);
    free(buf);
    return 0;
}

/* Gradients of y = leaky_relu(batch_norm(x)) (batch statistics) w.r.t. x, weight and bias. */
int fn_bn_lrelu_backward(const float *gy, const float *x, float *gx, int64_t M, int64_t C,
                         const float *mean, const float *invstd, const float *weight, const float *bias,
                         float slope, float *gweight, float *gbias, int nthreads) {
    task_t tasks[MAX_THREADS];
    double *acc;
    float *buf = (float *)malloc(5 * (size_t)C * sizeof(float));
    if (!buf || M < 1) { free(buf); return -1; }
    float *shift_c = buf, *scale = buf + C, *offset = buf + 2 * C, *k1 = buf + 3 * C, *k0 = buf + 4 * C;
    for (int64_t c = 0; c < C; ++c) {
        double sc = (double)invstd[c] * (double)weight[c];
        shift_c[c] = mean[c];
        scale[c] = (float)sc;
        offset[c] = (float)((double)bias[c] - (double)mean[c] * sc);
    }
    memset(tasks, 0, sizeof(tasks));
    int n = split(tasks, nthreads, M, C, &acc);
    if (n < 0) { free(buf); return -1; }
    for (int t = 0; t < n; ++t) {
        tasks[t].x = x; tasks[t].gy = gy; tasks[t].gx = gx; tasks[t].shift_c = shift_c;
        tasks[t].scale = scale; tasks[t].offset = offset; tasks[t].slope = slope;
    }
    run_tasks(grad_stats_worker, tasks, n);
    for (int64_t c = 0; c < C; ++c) {
        double sg = 0.0, sgx = 0.0; /* sum g, sum g * (x - mean) */
        for (int t = 0; t < n; ++t) { sg += tasks[t].acc[c]; sgx += tasks[t].acc[C + c]; }
        double is = (double)invstd[c];
        double sum_g_xhat = sgx * is;
        if (gweight) gweight[c] = (float)sum_g_xhat;
        if (gbias) gbias[c] = (float)sg;
        /* gx = scale * (g - sg / M - xhat * sum_g_xhat / M) = scale * g + k1 * (x - mean) + k0 */
        double sc = (double)scale[c];
        double a = sg / (double)M, b = sum_g_xhat / (double)M;
        k1[c] = (float)(-sc * b * is);
        k0[c] = (float)(-sc * a);
    }
    for (int t = 0; t < n; ++t) { tasks[t].k1 = k1; tasks[t].k0 = k0; }
    run_tasks(grad_input_worker, tasks, n);
    free(acc);
    free(buf);
    return 0;
}

/* Instance normalisation + LeakyReLU of N images at once (x: N images of HW rows, channels_last):
 * each image's BatchNorm statistics are its instance statistics. mean, var and invstd are (N, C).
 * With at least as many images as threads, one parallel region gives each thread whole images
 * (a region per image cost a thread wake-up or a barrier each); otherwise the images run one after
 * another, each split over the threads. */
static void image_threads(int64_t N, int nthreads, int *outer, int *inner) {
    if (nthreads < 1) nthreads = 1;
    *outer = (N >= nthreads && nthreads > 1) ? nthreads : 1;
    *inner = *outer > 1 ? 1 : nthreads;
}

int fn_in_lrelu_forward(const float *x, float *y, int64_t N, int64_t HW, int64_t C, const float *weight,
                        const float *bias, double eps, float slope, float *mean_out, float *var_out,
                        float *invstd_out, int nthreads) {
    if (N < 1 || HW < 1) return -1;
    int outer, inner, failed = 0;
    image_threads(N, nthreads, &outer, &inner);
    const int64_t stride = HW * C;
#pragma omp parallel for num_threads(outer) if (outer > 1) schedule(static) reduction(| : failed)
    for (int64_t n = 0; n < N; ++n)
        failed |= fn_bn_lrelu_forward(x + n * stride, y + n * stride, HW, C, weight, bias, eps, slope,
                                      mean_out + n * C, var_out + n * C, invstd_out + n * C, inner) != 0;
    return failed ? -1 : 0;
}

/* The backward of fn_in_lrelu_forward; gweight and gbias are (N, C): each image's share. */
int fn_in_lrelu_backward(const float *gy, const float *x, float *gx, int64_t N, int64_t HW, int64_t C,
                         const float *mean, const float *invstd, const float *weight, const float *bias,
                         float slope, float *gweight, float *gbias, int nthreads) {
    if (N < 1 || HW < 1) return -1;
    int outer, inner, failed = 0;
    image_threads(N, nthreads, &outer, &inner);
    const int64_t stride = HW * C;
#pragma omp parallel for num_threads(outer) if (outer > 1) schedule(static) reduction(| : failed)
    for (int64_t n = 0; n < N; ++n)
        failed |= fn_bn_lrelu_backward(gy + n * stride, x + n * stride, gx + n * stride, HW, C, mean + n * C,
                                       invstd + n * C, weight, bias, slope, gweight ? gweight + n * C : NULL,
                                       gbias ? gbias + n * C : NULL, inner) != 0;
    return failed ? -1 : 0;
}
