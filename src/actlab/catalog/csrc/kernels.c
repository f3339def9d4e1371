/* actlab's C kernels for the CPU, float32: built and loaded by actlab.catalog.cpu_kernels.
 *
 * Each activation here has a guard in its exact form that inductor can only pay for with
 * selects on every element (against overflow, and for the values at +-inf): the compiled
 * hand formulas, which have no guard and return inf or NaN there, were 5-20 % faster. Here
 * every element is evaluated by the direct form, each block of BLOCK elements notes whether
 * it holds an element beyond the direct form's range (or a NaN), and only those elements
 * are evaluated again, in double precision, with the catalog's limits. The common case pays
 * one compare per element, and the coefficients stay in registers.
 *
 * Entry points (p: the activation's parameters as float32, in the order cpu_kernels names;
 * sums: NULL, or the gradients of learned parameters, as doubles):
 *   void actlab_<name>_forward(const float *x, float *y, int64_t n, const float *p, int nthreads)
 *   void actlab_<name>_backward(const float *x, const float *g, float *gx, int64_t n,
 *                               const float *p, double *sums, int nthreads)
 * Threads: the range is split into nthreads contiguous parts of whole blocks (pthreads,
 * joined before returning; per-part sums added in order, so the thread count changes only
 * the order of the sums). target_clones compiles each range loop for AVX-512, AVX2+FMA and
 * generic x86-64 (Linux: chosen when loaded); elsewhere the compiler's default target.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#define BLOCK 256
#define NSUMS 10
#define MAX_THREADS 256
#define MIN_PER_THREAD (1 << 15)
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) /* ifunc: glibc */
#define CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define CLONES
#endif

/* one call: the tensors, the parameters, and the loop over [lo, hi) that does the work */
typedef struct args args_t;
typedef void (*range_fn)(const args_t *a, int64_t lo, int64_t hi, double *sums);
struct args {
    const float *x, *g;
    float *y;
    const void *p;
    range_fn range;
};

typedef struct {
    const args_t *a;
    int64_t lo, hi;
    double *sums;
    double own[NSUMS];
} job_t;

static void *work(void *arg) {
    job_t *j = (job_t *)arg;
    j->a->range(j->a, j->lo, j->hi, j->sums ? j->own : 0);
    return 0;
}

/* [0, n) in up to nthreads parts of whole blocks, the first in the calling thread (and any
 * part whose thread could not be started); sums[0..nsums) = the parts' sums, in order */
static void run(const args_t *a, int64_t n, int nthreads, double *sums, int nsums) {
    job_t jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS];
    int64_t blocks = (n + BLOCK - 1) / BLOCK, most = n / MIN_PER_THREAD;
    int t = nthreads < 1 ? 1 : (nthreads > MAX_THREADS ? MAX_THREADS : nthreads);
    if (t > most)
        t = most < 1 ? 1 : (int)most;
    for (int k = 0; k < t; ++k) {
        int64_t lo = blocks * k / t * BLOCK, hi = blocks * (k + 1) / t * BLOCK;
        jobs[k] = (job_t){a, lo < n ? lo : n, hi < n ? hi : n, sums, {0}};
    }
    for (int k = 1; k < t; ++k)
        started[k] = pthread_create(&tid[k], 0, work, &jobs[k]) == 0;
    work(&jobs[0]);
    for (int k = 1; k < t; ++k) {
        if (started[k])
            pthread_join(tid[k], 0);
        else
            work(&jobs[k]);
    }
    for (int i = 0; sums && i < nsums; ++i) {
        sums[i] = 0.0;
        for (int k = 0; k < t; ++k)
            sums[i] += jobs[k].own[i];
    }
}

/* ------------------------------------------------------------------------------- PAU
 * (safe, degrees 5/4): f(x) = P(x) / Q(|x|), P = a0 + a1 x + ... + a5 x^5,
 * Q = 1 + e1 w + ... + e4 w^4, e_k = |b_k|, w = |x|. The direct form (Horner's rule, one
 * division) holds while (8 max|coef|) |x|^5 < FLT_MAX (T, at most 2^16); beyond, and for NaN,
 * the forms of actlab.catalog.fast_forms._pau* in double (direct for |x| <= 1, divided by
 * x^5 beyond; point() below): exact everywhere, f(+-inf) = (a5 / e4) (+-inf). The backward
 * writes g f'(x) and, when asked, the ten coefficient gradients a0..a5, b1..b4, summed in
 * float32 lanes per block and in double across blocks (a block that holds an element beyond
 * T sums all its terms in double instead).
 */
typedef struct {
    float a[6], e[5], sb[4], far;
    double ad[6], ed[5];
} coef_t;

static void setup(coef_t *c, const float *p) {
    float m = 1.0f;
    for (int k = 0; k < 6; ++k) {
        c->a[k] = p[k];
        c->ad[k] = p[k];
        m = fmaxf(m, fabsf(p[k]));
    }
    c->e[0] = 1.0f;
    c->ed[0] = 1.0;
    for (int k = 1; k < 5; ++k) {
        float b = p[5 + k];
        c->e[k] = fabsf(b);
        c->ed[k] = c->e[k];
        c->sb[k - 1] = (float)((b > 0) - (b < 0));
        m = fmaxf(m, c->e[k]);
    }
    float t = powf(3.0e38f / (8.0f * m), 0.2f);
    c->far = t < 65536.0f ? t : 65536.0f;
}

/* the direct form's polynomials in float32 (Horner's rule; inlined into the vector loops) */
static inline float poly_p(const coef_t *c, float v) {
    const float *a = c->a;
    return ((((a[5] * v + a[4]) * v + a[3]) * v + a[2]) * v + a[1]) * v + a[0];
}

static inline float poly_dp(const coef_t *c, float v) {
    const float *a = c->a;
    return (((5 * a[5] * v + 4 * a[4]) * v + 3 * a[3]) * v + 2 * a[2]) * v + a[1];
}

static inline float poly_q(const coef_t *c, float w) {
    const float *e = c->e;
    return (((e[4] * w + e[3]) * w + e[2]) * w + e[1]) * w + 1.0f;
}

static inline float poly_dq(const coef_t *c, float w) {
    const float *e = c->e;
    return ((4 * e[4] * w + 3 * e[3]) * w + 2 * e[2]) * w + e[1];
}

/* one element in double: f, and when asked fp = f'(x), da[k] = df/da_k = x^k / Q and
 * db[k-1] = f |x|^k / Q (= -df/d|b_k|). |x| <= 1: the direct form; beyond, the form divided
 * by x^5 (z = 1/x, num(z) = sum a_(5-k) z^k, E(w) = sum e_(4-k) w^k, f = num / E * x), as
 * actlab.catalog.fast_forms._pau* (finite at +-inf, where z = 0) */
static void point(const coef_t *c, double x, double *f, double *fp, double *da, double *db) {
    const double *a = c->ad, *e = c->ed;
    double q[5], r;
    if (fabs(x) <= 1.0) {
        double w = fabs(x), sg = (x > 0) - (x < 0);
        double P = ((((a[5] * x + a[4]) * x + a[3]) * x + a[2]) * x + a[1]) * x + a[0];
        double Q = (((e[4] * w + e[3]) * w + e[2]) * w + e[1]) * w + e[0];
        r = 1.0 / Q;
        *f = P * r;
        if (!fp)
            return;
        double dP = (((5 * a[5] * x + 4 * a[4]) * x + 3 * a[3]) * x + 2 * a[2]) * x + a[1];
        double dQ = ((4 * e[4] * w + 3 * e[3]) * w + 2 * e[2]) * w + e[1];
        *fp = (dP - *f * sg * dQ) * r;
        double xk = 1.0;
        for (int k = 0; k < 6; ++k, xk *= x)
            da[k] = xk * r;
        q[0] = 1.0;
        for (int k = 1; k < 5; ++k)
            q[k] = q[k - 1] * w; /* |x|^k */
    } else {
        double z = 1.0 / x, w = fabs(z);
        double num = ((((a[0] * z + a[1]) * z + a[2]) * z + a[3]) * z + a[4]) * z + a[5];
        double E = (((e[0] * w + e[1]) * w + e[2]) * w + e[3]) * w + e[4];
        r = 1.0 / E;
        double u = num * r;
        *f = u * x;
        if (!fp)
            return;
        double dnum = (((5 * a[0] * z + 4 * a[1]) * z + 3 * a[2]) * z + 2 * a[3]) * z + a[4];
        double dE = ((4 * e[0] * w + 3 * e[1]) * w + 2 * e[2]) * w + e[3];
        *fp = (u * (E + w * dE) - z * dnum) * r;
        double zk = 1.0;
        for (int k = 4; k >= 0; --k, zk *= z) /* x^k / Q = z^(4-k) / E */
            da[k] = zk * r;
        da[5] = x * r;
        q[4] = 1.0;
        for (int k = 3; k >= 0; --k)
            q[k] = q[k + 1] * w; /* |x|^k / x^4 = w^(4-k) */
    }
    for (int k = 1; k < 5; ++k)
        db[k - 1] = *f * q[k] * r;
}

CLONES static void pau_forward_range(const coef_t *c, const float *restrict x, float *restrict y,
                                     int64_t lo, int64_t hi) {
    const coef_t k = *c; /* a local copy: the loops keep the coefficients in registers */
    const float T = k.far;
    for (int64_t s = lo; s < hi; s += BLOCK) {
        int64_t end = hi - s < BLOCK ? hi : s + BLOCK;
        int far = 0;
#pragma omp simd reduction(| : far)
        for (int64_t i = s; i < end; ++i) {
            float v = x[i], w = fabsf(v);
            y[i] = poly_p(&k, v) / poly_q(&k, w);
            far |= !(w <= T);
        }
        if (far)
            for (int64_t i = s; i < end; ++i)
                if (!(fabsf(x[i]) <= T)) {
                    double f;
                    point(c, x[i], &f, 0, 0, 0);
                    y[i] = (float)f;
                }
    }
}

CLONES static void pau_backward_range(const coef_t *c, const float *restrict x,
                                      const float *restrict g, float *restrict gx, int64_t lo,
                                      int64_t hi, double *sums) {
    const coef_t k = *c;
    const float T = k.far;
    for (int64_t s = lo; s < hi; s += BLOCK) {
        int64_t end = hi - s < BLOCK ? hi : s + BLOCK;
        int far = 0;
        if (sums) {
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0;
#pragma omp simd reduction(| : far) reduction(+ : s0, s1, s2, s3, s4, s5, t1, t2, t3, t4)
            for (int64_t i = s; i < end; ++i) {
                float v = x[i], gi = g[i], w = fabsf(v);
                far |= !(w <= T);
                float sg = (float)((v > 0) - (v < 0));
                float r = 1.0f / poly_q(&k, w), f = poly_p(&k, v) * r, gr = gi * r, gf = gr * f;
                gx[i] = gi * (poly_dp(&k, v) - f * sg * poly_dq(&k, w)) * r;
                float v2 = v * v, w2 = w * w;
                s0 += gr;
                s1 += gr * v;
                s2 += gr * v2;
                s3 += gr * v2 * v;
                s4 += gr * v2 * v2;
                s5 += gr * v2 * v2 * v;
                t1 += gf * w;
                t2 += gf * w2;
                t3 += gf * w2 * w;
                t4 += gf * w2 * w2;
            }
            double b[NSUMS] = {s0, s1, s2, s3, s4, s5, t1, t2, t3, t4};
            for (int k = 0; !far && k < NSUMS; ++k)
                sums[k] += b[k];
        } else {
#pragma omp simd reduction(| : far)
            for (int64_t i = s; i < end; ++i) {
                float v = x[i], w = fabsf(v);
                float sg = (float)((v > 0) - (v < 0));
                float r = 1.0f / poly_q(&k, w);
                gx[i] = g[i] * (poly_dp(&k, v) - poly_p(&k, v) * r * sg * poly_dq(&k, w)) * r;
                far |= !(w <= T);
            }
        }
        if (!far)
            continue;
        /* a block with an element beyond T (or NaN): those elements' gx, and (the float
         * sums above hold their inf or NaN) every element's parameter terms, in double */
        for (int64_t i = s; i < end; ++i) {
            int out = !(fabsf(x[i]) <= T);
            if (!out && !sums)
                continue;
            double f, fp, da[6], db[4];
            point(c, x[i], &f, &fp, da, db);
            if (out)
                gx[i] = (float)(g[i] * fp);
            for (int k = 0; sums && k < 6; ++k)
                sums[k] += g[i] * da[k];
            for (int k = 0; sums && k < 4; ++k)
                sums[6 + k] += g[i] * db[k];
        }
    }
}

static void pau_forward_part(const args_t *a, int64_t lo, int64_t hi, double *sums) {
    (void)sums;
    pau_forward_range((const coef_t *)a->p, a->x, a->y, lo, hi);
}

static void pau_backward_part(const args_t *a, int64_t lo, int64_t hi, double *sums) {
    pau_backward_range((const coef_t *)a->p, a->x, a->g, a->y, lo, hi, sums);
}

void actlab_pau_forward(const float *x, float *y, int64_t n, const float *p, int nthreads) {
    coef_t c;
    setup(&c, p);
    args_t a = {x, 0, y, &c, pau_forward_part};
    run(&a, n, nthreads, 0, 0);
}

void actlab_pau_backward(const float *x, const float *g, float *gx, int64_t n, const float *p,
                         double *sums, int nthreads) {
    coef_t c;
    setup(&c, p);
    args_t a = {x, g, gx, &c, pau_backward_part};
    run(&a, n, nthreads, sums, NSUMS);
    for (int i = 0; sums && i < 4; ++i) /* df/db_k = -sign(b_k) sum g f |x|^k / Q */
        sums[6 + i] *= -c.sb[i];
}

/* ------------------------------------------------------- isru, isrlu, bent_identity
 * One parameter at most (alpha), no learned ones. Forward and backward are one vector loop
 * each, with the far test per block as for PAU; the slow path is the catalog's value in
 * double (its limits at +-inf). The direct forms:
 *   isru   x / sqrt(1 + u^2), u = sqrt(alpha) x: u^2 overflows beyond |u| = 1.8e19, so the
 *          forward is exact for |u| <= 1e18 (beyond, f is +-1/sqrt(alpha) in float32); its
 *          derivative (1 + u^2)^(-3/2) is right everywhere (0 where u^2 overflows);
 *   isrlu  x for x >= 0, isru below;
 *   bent   (sqrt(x^2 + 1) - 1) / 2 + x as written (the default fast path's approximate
 *          form: all digits of the square-root term lost for |x| < 2.4e-4, 1.1e-4 relative
 *          around 1e-3), exact for |x| <= 1e18, and f' = x / (2 sqrt(x^2 + 1)) + 1.
 */
typedef struct {
    float s, big; /* sqrt(alpha), the far threshold */
    double alpha;
} unary_t;

static void unary_setup(unary_t *u, const float *p, int has_alpha) {
    u->alpha = has_alpha ? (double)p[0] : 1.0;
    u->s = (float)sqrt(u->alpha);
    u->big = (float)(1e18 / sqrt(u->alpha));
}

static inline float isru_near(float x, float s) {
    float u = s * x;
    return x / sqrtf(1.0f + u * u);
}

static inline float isru_near_d(float x, float s) {
    float u = s * x, r = 1.0f / sqrtf(1.0f + u * u);
    return r * r * r;
}

static double isru_exact(double x, double alpha) {
    if (isinf(x))
        return copysign(1.0 / sqrt(alpha), x);
    return x / sqrt(1.0 + alpha * x * x);
}

static inline float bent_near(float x) { return (sqrtf(x * x + 1.0f) - 1.0f) * 0.5f + x; }

static inline float bent_near_d(float x) { return 0.5f * x / sqrtf(x * x + 1.0f) + 1.0f; }

static double bent_exact(double x) {
    if (isinf(x))
        return x; /* 1.5 x and 0.5 x */
    return (sqrt(x * x + 1.0) - 1.0) * 0.5 + x;
}

static double bent_exact_d(double x) {
    if (isinf(x))
        return x > 0 ? 1.5 : 0.5;
    return 0.5 * x / sqrt(x * x + 1.0) + 1.0;
}

/* the vector loop over [lo, hi) with the far test, then the far elements in double */
#define UNARY_LOOP(NEAR, IS_FAR, EXACT)                                                     \
    for (int64_t s = lo; s < hi; s += BLOCK) {                                              \
        int64_t end = hi - s < BLOCK ? hi : s + BLOCK;                                      \
        int far = 0;                                                                        \
        _Pragma("omp simd reduction(| : far)") for (int64_t i = s; i < end; ++i) {          \
            float v = x[i];                                                                 \
            y[i] = NEAR;                                                                    \
            far |= IS_FAR;                                                                  \
        }                                                                                   \
        if (far)                                                                            \
            for (int64_t i = s; i < end; ++i) {                                             \
                float v = x[i];                                                             \
                if (IS_FAR)                                                                 \
                    y[i] = (float)(EXACT);                                                  \
            }                                                                               \
    }

/* the loop without a far test (a form that is right everywhere) */
#define PLAIN_LOOP(EXPR)                                                                    \
    _Pragma("omp simd") for (int64_t i = lo; i < hi; ++i) {                                 \
        float v = x[i];                                                                     \
        y[i] = EXPR;                                                                        \
    }

CLONES static void isru_forward_range(const unary_t *u, const float *restrict x,
                                      float *restrict y, int64_t lo, int64_t hi) {
    const float sq = u->s, big = u->big;
    UNARY_LOOP(isru_near(v, sq), !(fabsf(v) <= big), isru_exact(v, u->alpha))
}

CLONES static void isru_backward_range(const unary_t *u, const float *restrict x,
                                       const float *restrict g, float *restrict y, int64_t lo,
                                       int64_t hi) {
    const float sq = u->s;
    PLAIN_LOOP(g[i] * isru_near_d(v, sq))
}

CLONES static void isrlu_forward_range(const unary_t *u, const float *restrict x,
                                       float *restrict y, int64_t lo, int64_t hi) {
    const float sq = u->s, big = u->big;
    UNARY_LOOP(v >= 0.0f ? v : isru_near(v, sq), !(v >= -big), isru_exact(v, u->alpha))
}

CLONES static void isrlu_backward_range(const unary_t *u, const float *restrict x,
                                        const float *restrict g, float *restrict y, int64_t lo,
                                        int64_t hi) {
    const float sq = u->s;
    PLAIN_LOOP(v >= 0.0f ? g[i] : g[i] * isru_near_d(v, sq))
}

CLONES static void bent_forward_range(const unary_t *u, const float *restrict x,
                                      float *restrict y, int64_t lo, int64_t hi) {
    const float big = u->big;
    UNARY_LOOP(bent_near(v), !(fabsf(v) <= big), bent_exact(v))
}

CLONES static void bent_backward_range(const unary_t *u, const float *restrict x,
                                       const float *restrict g, float *restrict y, int64_t lo,
                                       int64_t hi) {
    const float big = u->big;
    UNARY_LOOP(g[i] * bent_near_d(v), !(fabsf(v) <= big), g[i] * bent_exact_d(v))
}

/* entry points: NAME's forward and backward range functions, and whether p holds alpha */
#define UNARY_ENTRIES(NAME, FWD, BWD, HAS_ALPHA)                                            \
    static void NAME##_forward_part(const args_t *a, int64_t lo, int64_t hi, double *sums) { \
        (void)sums;                                                                         \
        FWD((const unary_t *)a->p, a->x, a->y, lo, hi);                                     \
    }                                                                                       \
    static void NAME##_backward_part(const args_t *a, int64_t lo, int64_t hi, double *sums) { \
        (void)sums;                                                                         \
        BWD((const unary_t *)a->p, a->x, a->g, a->y, lo, hi);                               \
    }                                                                                       \
    void actlab_##NAME##_forward(const float *x, float *y, int64_t n, const float *p,       \
                                 int nthreads) {                                            \
        unary_t u;                                                                          \
        unary_setup(&u, p, HAS_ALPHA);                                                      \
        args_t a = {x, 0, y, &u, NAME##_forward_part};                                      \
        run(&a, n, nthreads, 0, 0);                                                         \
    }                                                                                       \
    void actlab_##NAME##_backward(const float *x, const float *g, float *gx, int64_t n,     \
                                  const float *p, double *sums, int nthreads) {             \
        unary_t u;                                                                          \
        unary_setup(&u, p, HAS_ALPHA);                                                      \
        args_t a = {x, g, gx, &u, NAME##_backward_part};                                    \
        run(&a, n, nthreads, 0, 0);                                                         \
        (void)sums;                                                                         \
    }

UNARY_ENTRIES(isru, isru_forward_range, isru_backward_range, 1)
UNARY_ENTRIES(isrlu, isrlu_forward_range, isrlu_backward_range, 1)
UNARY_ENTRIES(bent_identity, bent_forward_range, bent_backward_range, 0)
