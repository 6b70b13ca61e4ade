/*
 * tfc_bench: times SavedModels in TensorFlow's serving runtime (the C API).
 *
 * Built by recadvisor (recadvisor/serving/tfc.py) on first use against the TensorFlow wheel's
 * own headers and libtensorflow_cc. It loads every model of a comparison in this one process
 * with TF_LoadSessionFromSavedModel, builds its input tensors once from the blobs Python wrote,
 * and times TF_SessionRun (plus freeing the outputs) in a C loop, so no Python runs between two
 * calls. Same interleaving as recadvisor.bench.time_interleaved: warm-up calls first, then
 * rounds; each round visits every model in a new shuffled order, makes one untimed call (when
 * burst > 1) and `burst` timed calls.
 *
 * Usage: tfc_bench PLAN_FILE. The plan is a line-based text file:
 *
 *   mode time|outputs|concurrency|all     (all: time, then concurrency, per case)
 *   warmup N | requests N | burst N | seed N | duration_ms N | rounds N
 *   threads T1 T2 ...            concurrency levels (mode concurrency)
 *   cases N                      input sets per model (e.g. one per batch size)
 *   outdir PATH                  where mode outputs writes tensors
 *   model LABEL                  starts a model; then, for it:
 *     dir PATH                   the SavedModel directory (rest of the line)
 *     tags serve[,other]
 *     config HEX|-               a serialized ConfigProto (session settings)
 *     output OP INDEX            one line per fetched output
 *     input CASE OP INDEX DTYPE NDIMS D0 .. DN-1 PATH
 *   end
 *
 * Input blobs: numeric tensors as raw little-endian values; TF_STRING tensors as, per element,
 * a uint32 length and the bytes. Results go to stdout, one line each:
 *
 *   lat CASE MODEL N ns1 .. nsN
 *   conc CASE MODEL THREADS CALLS ELAPSED_NS N ns1 .. nsN
 *
 * Mode outputs writes OUTDIR/out_CASE_MODEL_K.bin: int32 dtype, int32 ndims, int64 dims, then
 * the raw values (nothing more for strings). Errors: one line on stderr, exit status 2.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensorflow/c/c_api.h"
#include "tensorflow/c/tf_tstring.h"

#define MAX_LINE 1048576
#define MAX_DIMS 8
#define MAX_LEVELS 16

typedef struct {
  int n_inputs;
  TF_Output *in_ops;
  TF_Tensor **in_vals;
} Case;

typedef struct {
  char *label;
  char *dir;
  char *tags;
  char *config_hex;
  TF_Graph *graph;
  TF_Session *session;
  int n_outputs;
  char **out_names;
  int *out_index;
  TF_Output *out_ops;
  Case *cases;
} Model;

typedef struct {
  char mode[32];
  long warmup, requests, burst, seed, duration_ms, rounds;
  int n_levels;
  long levels[MAX_LEVELS];
  int n_cases;
  char outdir[4096];
  int n_models;
  Model *models;
} Plan;

static void die(const char *what, const char *detail) {
  fprintf(stderr, "tfc_bench: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(2);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) die("out of memory", NULL);
  return p;
}

static char *xstrdup(const char *s) {
  char *p = strdup(s);
  if (!p) die("out of memory", NULL);
  return p;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* xorshift64*: a small seeded generator for the shuffles */
static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rng_next(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}
static void shuffle(int *order, int n) {
  for (int i = n - 1; i > 0; i--) {
    int j = (int)(rng_next() % (uint64_t)(i + 1));
    int t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}

static char *rest_of_line(char *line, int skip_words) {
  char *p = line;
  for (int i = 0; i < skip_words; i++) {
    while (*p == ' ') p++;
    while (*p && *p != ' ') p++;
  }
  while (*p == ' ') p++;
  size_t len = strlen(p);
  while (len && (p[len - 1] == '\n' || p[len - 1] == '\r')) p[--len] = 0;
  return p;
}

/* ---------------------------------------------------------------- tensors from blobs */

static unsigned char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) die("cannot open input blob", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = xcalloc((size_t)n + 1, 1);
  if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) die("cannot read input blob", path);
  fclose(f);
  *size = (size_t)n;
  return buf;
}

static TF_Tensor *tensor_from_blob(TF_DataType dtype, int ndims, const int64_t *dims,
                                   const char *path) {
  int64_t count = 1;
  for (int i = 0; i < ndims; i++) count *= dims[i];
  size_t size = 0;
  unsigned char *blob = read_file(path, &size);
  TF_Tensor *t;
  if (dtype == TF_STRING) {
    t = TF_AllocateTensor(TF_STRING, dims, ndims, (size_t)count * sizeof(TF_TString));
    TF_TString *strings = (TF_TString *)TF_TensorData(t);
    size_t pos = 0;
    for (int64_t i = 0; i < count; i++) {
      uint32_t len;
      if (pos + 4 > size) die("string blob too short", path);
      memcpy(&len, blob + pos, 4);
      pos += 4;
      if (pos + len > size) die("string blob too short", path);
      /* the tensor's memory is uninitialized: every element is initialized, then copied */
      TF_TString_Init(&strings[i]);
      TF_TString_Copy(&strings[i], (const char *)blob + pos, len);
      pos += len;
    }
  } else {
    size_t want = (size_t)count * TF_DataTypeSize(dtype);
    if (TF_DataTypeSize(dtype) == 0) die("unsupported input dtype", path);
    if (size != want) die("blob size does not match the tensor's shape", path);
    t = TF_AllocateTensor(dtype, dims, ndims, want);
    if (want) memcpy(TF_TensorData(t), blob, want);
  }
  free(blob);
  return t;
}

static void delete_tensor(TF_Tensor *t) {
  if (!t) return;
  if (TF_TensorType(t) == TF_STRING) {
    /* TF_DeleteTensor does not free strings kept on the heap */
    TF_TString *strings = (TF_TString *)TF_TensorData(t);
    int64_t count = TF_TensorElementCount(t);
    for (int64_t i = 0; i < count; i++) TF_TString_Dealloc(&strings[i]);
  }
  TF_DeleteTensor(t);
}

/* ---------------------------------------------------------------- plan */

static void parse_plan(const char *path, Plan *plan) {
  FILE *f = fopen(path, "r");
  if (!f) die("cannot open plan", path);
  char *line = xcalloc(MAX_LINE, 1);
  int cap = 0;
  Model *m = NULL;
  memset(plan, 0, sizeof(*plan));
  strcpy(plan->mode, "time");
  plan->warmup = 20;
  plan->requests = 200;
  plan->burst = 8;
  plan->duration_ms = 1000;
  plan->rounds = 4;
  plan->n_cases = 1;
  while (fgets(line, MAX_LINE, f)) {
    char key[64] = {0};
    if (sscanf(line, "%63s", key) != 1) continue;
    if (!strcmp(key, "mode")) {
      sscanf(line, "%*s %31s", plan->mode);
    } else if (!strcmp(key, "warmup")) {
      sscanf(line, "%*s %ld", &plan->warmup);
    } else if (!strcmp(key, "requests")) {
      sscanf(line, "%*s %ld", &plan->requests);
    } else if (!strcmp(key, "burst")) {
      sscanf(line, "%*s %ld", &plan->burst);
    } else if (!strcmp(key, "seed")) {
      sscanf(line, "%*s %ld", &plan->seed);
    } else if (!strcmp(key, "duration_ms")) {
      sscanf(line, "%*s %ld", &plan->duration_ms);
    } else if (!strcmp(key, "rounds")) {
      sscanf(line, "%*s %ld", &plan->rounds);
    } else if (!strcmp(key, "threads")) {
      char *p = rest_of_line(line, 1);
      while (*p && plan->n_levels < MAX_LEVELS) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        plan->levels[plan->n_levels++] = v;
        p = end;
      }
    } else if (!strcmp(key, "cases")) {
      sscanf(line, "%*s %d", &plan->n_cases);
    } else if (!strcmp(key, "outdir")) {
      snprintf(plan->outdir, sizeof(plan->outdir), "%s", rest_of_line(line, 1));
    } else if (!strcmp(key, "model")) {
      if (plan->n_models == cap) {
        cap = cap ? cap * 2 : 4;
        plan->models = realloc(plan->models, (size_t)cap * sizeof(Model));
        if (!plan->models) die("out of memory", NULL);
      }
      m = &plan->models[plan->n_models++];
      memset(m, 0, sizeof(*m));
      m->label = xstrdup(rest_of_line(line, 1));
      m->tags = xstrdup("serve");
      m->config_hex = xstrdup("-");
      m->cases = xcalloc((size_t)plan->n_cases, sizeof(Case));
    } else if (!m) {
      die("plan: a model line must come first", key);
    } else if (!strcmp(key, "dir")) {
      m->dir = xstrdup(rest_of_line(line, 1));
    } else if (!strcmp(key, "tags")) {
      free(m->tags);
      m->tags = xstrdup(rest_of_line(line, 1));
    } else if (!strcmp(key, "config")) {
      free(m->config_hex);
      m->config_hex = xstrdup(rest_of_line(line, 1));
    } else if (!strcmp(key, "output")) {
      char op[4096];
      int index = 0;
      if (sscanf(line, "%*s %4095s %d", op, &index) != 2) die("plan: bad output line", line);
      m->out_names = realloc(m->out_names, (size_t)(m->n_outputs + 1) * sizeof(char *));
      m->out_index = realloc(m->out_index, (size_t)(m->n_outputs + 1) * sizeof(int));
      if (!m->out_names || !m->out_index) die("out of memory", NULL);
      m->out_names[m->n_outputs] = xstrdup(op);
      m->out_index[m->n_outputs] = index;
      m->n_outputs++;
    } else if (!strcmp(key, "input")) {
      int c, index, dtype, ndims, consumed = 0;
      char op[4096];
      int64_t dims[MAX_DIMS];
      char *p = line;
      if (sscanf(p, "%*s %d %4095s %d %d %d%n", &c, op, &index, &dtype, &ndims, &consumed) != 5)
        die("plan: bad input line", line);
      if (c < 0 || c >= plan->n_cases || ndims < 0 || ndims > MAX_DIMS)
        die("plan: bad input case or rank", line);
      p += consumed;
      for (int i = 0; i < ndims; i++) {
        char *end;
        dims[i] = strtoll(p, &end, 10);
        if (end == p) die("plan: bad input dims", line);
        p = end;
      }
      Case *cs = &m->cases[c];
      cs->in_ops = realloc(cs->in_ops, (size_t)(cs->n_inputs + 1) * sizeof(TF_Output));
      cs->in_vals = realloc(cs->in_vals, (size_t)(cs->n_inputs + 1) * sizeof(TF_Tensor *));
      if (!cs->in_ops || !cs->in_vals) die("out of memory", NULL);
      /* the operation is resolved after loading; keep its name in the oper slot for now */
      cs->in_ops[cs->n_inputs].oper = (TF_Operation *)xstrdup(op);
      cs->in_ops[cs->n_inputs].index = index;
      cs->in_vals[cs->n_inputs] =
          tensor_from_blob((TF_DataType)dtype, ndims, dims, rest_of_line(p, 0));
      cs->n_inputs++;
    } else if (!strcmp(key, "end")) {
      m = NULL;
    } else {
      die("plan: unknown key", key);
    }
  }
  fclose(f);
  free(line);
  if (plan->n_models == 0) die("plan: no model", path);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static TF_Operation *find_op(TF_Graph *graph, const char *name, const char *label) {
  TF_Operation *op = TF_GraphOperationByName(graph, name);
  if (!op) {
    fprintf(stderr, "tfc_bench: model %s has no operation %s\n", label, name);
    exit(2);
  }
  return op;
}

static void load_model(Model *m, int n_cases) {
  TF_Status *status = TF_NewStatus();
  TF_SessionOptions *opts = TF_NewSessionOptions();
  if (strcmp(m->config_hex, "-") != 0) {
    size_t n = strlen(m->config_hex) / 2;
    unsigned char *proto = xcalloc(n, 1);
    for (size_t i = 0; i < n; i++) {
      int hi = hexval(m->config_hex[2 * i]), lo = hexval(m->config_hex[2 * i + 1]);
      if (hi < 0 || lo < 0) die("plan: bad config hex", m->label);
      proto[i] = (unsigned char)(hi * 16 + lo);
    }
    TF_SetConfig(opts, proto, n, status);
    free(proto);
    if (TF_GetCode(status) != TF_OK) die("bad session config", TF_Message(status));
  }
  char *tags_copy = xstrdup(m->tags);
  const char *tags[16];
  int n_tags = 0;
  for (char *tok = strtok(tags_copy, ","); tok && n_tags < 16; tok = strtok(NULL, ","))
    tags[n_tags++] = tok;
  m->graph = TF_NewGraph();
  m->session =
      TF_LoadSessionFromSavedModel(opts, NULL, m->dir, tags, n_tags, m->graph, NULL, status);
  if (TF_GetCode(status) != TF_OK) {
    fprintf(stderr, "tfc_bench: cannot load %s: %s\n", m->dir, TF_Message(status));
    exit(2);
  }
  free(tags_copy);
  TF_DeleteSessionOptions(opts);
  TF_DeleteStatus(status);
  m->out_ops = xcalloc((size_t)m->n_outputs, sizeof(TF_Output));
  for (int k = 0; k < m->n_outputs; k++) {
    m->out_ops[k].oper = find_op(m->graph, m->out_names[k], m->label);
    m->out_ops[k].index = m->out_index[k];
  }
  for (int c = 0; c < n_cases; c++) {
    Case *cs = &m->cases[c];
    for (int i = 0; i < cs->n_inputs; i++) {
      char *name = (char *)cs->in_ops[i].oper;
      cs->in_ops[i].oper = find_op(m->graph, name, m->label);
      free(name);
    }
  }
}

/* ---------------------------------------------------------------- one call */

/* One serving call: TF_SessionRun on tensors built once, outputs freed (as a server would
 * after copying them into its response). `outs` has room for the model's outputs. */
static void run_once(const Model *m, const Case *cs, TF_Tensor **outs, TF_Status *status) {
  TF_SessionRun(m->session, NULL, cs->in_ops, cs->in_vals, cs->n_inputs, m->out_ops, outs,
                m->n_outputs, NULL, 0, NULL, status);
  if (TF_GetCode(status) != TF_OK) {
    fprintf(stderr, "tfc_bench: TF_SessionRun failed on %s: %s\n", m->label, TF_Message(status));
    exit(2);
  }
  for (int k = 0; k < m->n_outputs; k++) {
    delete_tensor(outs[k]);
    outs[k] = NULL;
  }
}

static void time_case(Plan *plan, int c) {
  int n = plan->n_models;
  long requests = plan->requests > 0 ? plan->requests : 1;
  long burst = plan->burst > 0 ? plan->burst : 1;
  int64_t **lat = xcalloc((size_t)n, sizeof(int64_t *));
  int *order = xcalloc((size_t)n, sizeof(int));
  TF_Status *status = TF_NewStatus();
  int max_out = 0;
  for (int i = 0; i < n; i++) {
    lat[i] = xcalloc((size_t)requests, sizeof(int64_t));
    order[i] = i;
    if (plan->models[i].n_outputs > max_out) max_out = plan->models[i].n_outputs;
  }
  TF_Tensor **outs = xcalloc((size_t)max_out, sizeof(TF_Tensor *));
  for (long w = 0; w < plan->warmup; w++)
    for (int i = 0; i < n; i++) run_once(&plan->models[i], &plan->models[i].cases[c], outs, status);
  long done = 0;
  while (done < requests) {
    long calls = burst < requests - done ? burst : requests - done;
    shuffle(order, n);
    for (int j = 0; j < n; j++) {
      const Model *m = &plan->models[order[j]];
      const Case *cs = &m->cases[c];
      if (burst > 1) run_once(m, cs, outs, status); /* back to this model's steady state */
      for (long k = 0; k < calls; k++) {
        int64_t start = now_ns();
        run_once(m, cs, outs, status);
        lat[order[j]][done + k] = now_ns() - start;
      }
    }
    done += calls;
  }
  for (int i = 0; i < n; i++) {
    printf("lat %d %d %ld", c, i, requests);
    for (long k = 0; k < requests; k++) printf(" %lld", (long long)lat[i][k]);
    printf("\n");
    free(lat[i]);
  }
  fflush(stdout);
  free(lat);
  free(order);
  free(outs);
  TF_DeleteStatus(status);
}

/* ---------------------------------------------------------------- concurrency */

typedef struct {
  const Model *model;
  const Case *cs;
  int64_t deadline;
  int64_t *lat;
  long n, cap;
} Caller;

static void *caller_loop(void *arg) {
  Caller *w = (Caller *)arg;
  TF_Status *status = TF_NewStatus();
  TF_Tensor **outs = xcalloc((size_t)w->model->n_outputs, sizeof(TF_Tensor *));
  for (;;) {
    int64_t start = now_ns();
    if (start >= w->deadline) break;
    run_once(w->model, w->cs, outs, status);
    if (w->n == w->cap) {
      w->cap = w->cap ? w->cap * 2 : 1024;
      w->lat = realloc(w->lat, (size_t)w->cap * sizeof(int64_t));
      if (!w->lat) die("out of memory", NULL);
    }
    w->lat[w->n++] = now_ns() - start;
  }
  free(outs);
  TF_DeleteStatus(status);
  return NULL;
}

/* A closed loop of `threads` callers per model: each calls again as soon as its call returns.
 * The time per model is split into rounds, visited in a shuffled order like time_case. */
static void concurrency_case(Plan *plan, int c, int threads) {
  int n = plan->n_models;
  int rounds = plan->rounds > 0 ? (int)plan->rounds : 1;
  int64_t slice = (int64_t)plan->duration_ms * 1000000LL / rounds;
  int *order = xcalloc((size_t)n, sizeof(int));
  long *calls = xcalloc((size_t)n, sizeof(long));
  int64_t *elapsed = xcalloc((size_t)n, sizeof(int64_t));
  Caller **callers = xcalloc((size_t)n, sizeof(Caller *));
  pthread_t *tids = xcalloc((size_t)threads, sizeof(pthread_t));
  for (int i = 0; i < n; i++) {
    order[i] = i;
    callers[i] = xcalloc((size_t)threads, sizeof(Caller));
  }
  for (int r = 0; r < rounds; r++) {
    shuffle(order, n);
    for (int j = 0; j < n; j++) {
      int i = order[j];
      int64_t start = now_ns();
      for (int t = 0; t < threads; t++) {
        Caller *w = &callers[i][t];
        w->model = &plan->models[i];
        w->cs = &plan->models[i].cases[c];
        w->deadline = start + slice;
        if (pthread_create(&tids[t], NULL, caller_loop, w) != 0)
          die("cannot start a caller thread", NULL);
      }
      for (int t = 0; t < threads; t++) pthread_join(tids[t], NULL);
      elapsed[i] += now_ns() - start;
    }
  }
  for (int i = 0; i < n; i++) {
    long total = 0;
    for (int t = 0; t < threads; t++) total += callers[i][t].n;
    calls[i] = total;
    printf("conc %d %d %d %ld %lld %ld", c, i, threads, calls[i], (long long)elapsed[i], total);
    for (int t = 0; t < threads; t++) {
      for (long k = 0; k < callers[i][t].n; k++)
        printf(" %lld", (long long)callers[i][t].lat[k]);
      free(callers[i][t].lat);
    }
    printf("\n");
    free(callers[i]);
  }
  fflush(stdout);
  free(order);
  free(calls);
  free(elapsed);
  free(callers);
  free(tids);
}

/* ---------------------------------------------------------------- outputs (parity) */

static void write_outputs(Plan *plan, int c) {
  TF_Status *status = TF_NewStatus();
  for (int i = 0; i < plan->n_models; i++) {
    Model *m = &plan->models[i];
    Case *cs = &m->cases[c];
    TF_Tensor **outs = xcalloc((size_t)m->n_outputs, sizeof(TF_Tensor *));
    TF_SessionRun(m->session, NULL, cs->in_ops, cs->in_vals, cs->n_inputs, m->out_ops, outs,
                  m->n_outputs, NULL, 0, NULL, status);
    if (TF_GetCode(status) != TF_OK) {
      fprintf(stderr, "tfc_bench: TF_SessionRun failed on %s: %s\n", m->label,
              TF_Message(status));
      exit(2);
    }
    for (int k = 0; k < m->n_outputs; k++) {
      char path[8192];
      snprintf(path, sizeof(path), "%s/out_%d_%d_%d.bin", plan->outdir, c, i, k);
      FILE *f = fopen(path, "wb");
      if (!f) die("cannot write output", path);
      int32_t dtype = (int32_t)TF_TensorType(outs[k]);
      int32_t ndims = (int32_t)TF_NumDims(outs[k]);
      fwrite(&dtype, 4, 1, f);
      fwrite(&ndims, 4, 1, f);
      for (int d = 0; d < ndims; d++) {
        int64_t dim = TF_Dim(outs[k], d);
        fwrite(&dim, 8, 1, f);
      }
      if (dtype != TF_STRING) fwrite(TF_TensorData(outs[k]), 1, TF_TensorByteSize(outs[k]), f);
      fclose(f);
      delete_tensor(outs[k]);
    }
    free(outs);
  }
  TF_DeleteStatus(status);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: tfc_bench PLAN_FILE\n");
    return 2;
  }
  Plan plan;
  parse_plan(argv[1], &plan);
  rng_state ^= (uint64_t)plan.seed * 0x9E3779B97F4A7C15ULL;
  if (!rng_state) rng_state = 1;
  for (int i = 0; i < plan.n_models; i++) load_model(&plan.models[i], plan.n_cases);
  printf("loaded %d\n", plan.n_models);
  fflush(stdout);
  for (int c = 0; c < plan.n_cases; c++) {
    if (!strcmp(plan.mode, "outputs")) {
      write_outputs(&plan, c);
    } else if (!strcmp(plan.mode, "time")) {
      time_case(&plan, c);
    } else if (!strcmp(plan.mode, "concurrency") || !strcmp(plan.mode, "all")) {
      if (!strcmp(plan.mode, "all")) time_case(&plan, c);
      TF_Status *status = TF_NewStatus();
      for (int i = 0; i < plan.n_models; i++) {
        int max_out = plan.models[i].n_outputs;
        TF_Tensor **outs = xcalloc((size_t)max_out, sizeof(TF_Tensor *));
        for (long w = 0; w < plan.warmup; w++)
          run_once(&plan.models[i], &plan.models[i].cases[c], outs, status);
        free(outs);
      }
      TF_DeleteStatus(status);
      for (int l = 0; l < plan.n_levels; l++) concurrency_case(&plan, c, (int)plan.levels[l]);
    } else {
      die("plan: unknown mode", plan.mode);
    }
  }
  for (int i = 0; i < plan.n_models; i++) {
    Model *m = &plan.models[i];
    for (int c = 0; c < plan.n_cases; c++)
      for (int k = 0; k < m->cases[c].n_inputs; k++) delete_tensor(m->cases[c].in_vals[k]);
    TF_Status *status = TF_NewStatus();
    TF_CloseSession(m->session, status);
    TF_DeleteSession(m->session, status);
    TF_DeleteGraph(m->graph);
    TF_DeleteStatus(status);
  }
  return 0;
}
