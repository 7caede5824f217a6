/* Training-mode BatchNorm followed by LeakyReLU, forward and backward, in one kernel each.
 *
 * Activations are channels_last: x is an (M, C) row-major float32 matrix, M = N*H*W pixels.
 * PyTorch runs BatchNorm and LeakyReLU as separate memory passes (and the backward of each writes a
 * full-size intermediate); at FocusNet++'s full resolution they are memory-bound, so fusing them
 * saves passes over 64 MiB tensors. Statistics are accumulated in double around a per-channel
 * shift (the first pixel's value), so the variance does not cancel catastrophically.
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

typedef struct {
    const float *x, *gy;
    float *y, *gx;
    int64_t m0, m1, C;
    const float *shift_c, *scale, *offset, *k1, *k0;
    float slope;
    double *acc; /* 2*C doubles, private to the thread */
} task_t;

static void run_tasks(void *(*fn)(void *), task_t *tasks, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static, 1)
    for (int t = 0; t < nthreads; ++t) fn(&tasks[t]);
}

static void *stats_worker(void *arg) {
    task_t *t = (task_t *)arg;
    const int64_t C = t->C;
    double *s = t->acc, *ss = t->acc + C;
    for (int64_t m = t->m0; m < t->m1; ++m) {
        const float *row = t->x + m * C;
        for (int64_t c = 0; c < C; ++c) {
            double v = (double)row[c] - (double)t->shift_c[c];
            s[c] += v;
            ss[c] += v * v;
        }
    }
    return NULL;
}

static void *normalise_worker(void *arg) {
    task_t *t = (task_t *)arg;
    const int64_t C = t->C;
    const float slope = t->slope;
    for (int64_t m = t->m0; m < t->m1; ++m) {
        const float *row = t->x + m * C;
        float *out = t->y + m * C;
        for (int64_t c = 0; c < C; ++c) {
            float z = row[c] * t->scale[c] + t->offset[c];
            out[c] = z > 0.0f ? z : z * slope;
        }
    }
    return NULL;
}

static void *grad_stats_worker(void *arg) {
    task_t *t = (task_t *)arg;
    const int64_t C = t->C;
    const float slope = t->slope;
    double *sg = t->acc, *sgx = t->acc + C;
    for (int64_t m = t->m0; m < t->m1; ++m) {
        const float *row = t->x + m * C;
        const float *grow = t->gy + m * C;
        for (int64_t c = 0; c < C; ++c) {
            float z = row[c] * t->scale[c] + t->offset[c];
            float g = z > 0.0f ? grow[c] : grow[c] * slope;
            sg[c] += (double)g;
            sgx[c] += (double)g * ((double)row[c] - (double)t->shift_c[c]);
        }
    }
    return NULL;
}

static void *grad_input_worker(void *arg) {
    task_t *t = (task_t *)arg;
    const int64_t C = t->C;
    const float slope = t->slope;
    for (int64_t m = t->m0; m < t->m1; ++m) {
        const float *row = t->x + m * C;
        const float *grow = t->gy + m * C;
        float *out = t->gx + m * C;
        for (int64_t c = 0; c < C; ++c) {
            float z = row[c] * t->scale[c] + t->offset[c];
            float g = z > 0.0f ? grow[c] : grow[c] * slope;
            out[c] = t->scale[c] * g + t->k1[c] * (row[c] - t->shift_c[c]) + t->k0[c];
        }
    }
    return NULL;
}

static int split(task_t *tasks, int nthreads, int64_t M, int64_t C, double **acc_out) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    if (M < (int64_t)nthreads * 1024) nthreads = 1; /* small tensors: not worth a thread */
    double *acc = (double *)calloc((size_t)nthreads * 2 * (size_t)C, sizeof(double));
    if (!acc) return -1;
    int64_t step = (M + nthreads - 1) / nthreads;
    for (int t = 0; t < nthreads; ++t) {
        int64_t m0 = t * step, m1 = m0 + step;
        if (m0 > M) m0 = M;
        if (m1 > M) m1 = M;
        tasks[t].m0 = m0;
        tasks[t].m1 = m1;
        tasks[t].C = C;
        tasks[t].acc = acc + (size_t)t * 2 * (size_t)C;
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
