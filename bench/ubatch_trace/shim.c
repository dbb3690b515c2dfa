/* Logs every llama.cpp micro-batch (ubatch) a process computes: pid, start time, tokens,
 * tokens per sequence, sequences and milliseconds, one line each, to $UBLOG.
 *
 * It wraps llama_context::process_ubatch, so it sees llama-server's and our worker's
 * micro-batches alike, whatever batch API they use. Build and use (see bench/README.md):
 *   gcc -O2 -shared -fPIC -o ub.so shim.c -ldl
 *   LD_PRELOAD=$PWD/ub.so UBLOG=/tmp/ub.log UBLIB=<dir>/libllama.so <command>
 * UBLIB names the libllama.so the process loads itself (ctypes does: RTLD_NEXT cannot
 * find it), and must be the llama.cpp build the layout below comes from (0.3.36).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct ubatch_head { uint32_t equal_seqs, n_tokens, n_seq_tokens, n_seqs, n_seqs_unq, n_pos; };
typedef void *(*process_fn)(void *, const struct ubatch_head *, int, void *, int *);

#define SYM "_ZN13llama_context14process_ubatchERK12llama_ubatch14llm_graph_typeP22llama_memory_context_iR11ggml_status"

void *_ZN13llama_context14process_ubatchERK12llama_ubatch14llm_graph_typeP22llama_memory_context_iR11ggml_status(
    void *self, const struct ubatch_head *u, int graph_type, void *mctx, int *status) {
    static process_fn real = 0;
    static FILE *log = 0;
    if (!real) real = (process_fn) dlsym(RTLD_NEXT, SYM);
    if (!real && getenv("UBLIB")) {
        void *lib = dlopen(getenv("UBLIB"), RTLD_NOLOAD | RTLD_LAZY);
        if (lib) real = (process_fn) dlsym(lib, SYM);
    }
    if (!log) log = fopen(getenv("UBLOG") ? getenv("UBLOG") : "/tmp/ub.log", "a");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    void *out = real(self, u, graph_type, mctx, status);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    fprintf(log, "%d %ld.%06ld %u %u %u %.3f\n", (int) getpid(), (long) t0.tv_sec,
            t0.tv_nsec / 1000, u->n_tokens, u->n_seq_tokens, u->n_seqs, ms);
    fflush(log);
    return out;
}
