/*
 * demo: a small multi-threaded program for `unwindd stack` to look at.
 *
 * Four threads, each named (comm) and each spinning at the bottom of its own
 * chain of functions, so every stack has real depth:
 *
 *   demo      main -> run_server -> event_loop -> dispatch -> handle_request -> parse_header
 *   compress  worker_start -> compress_file -> compress_block -> deflate_window -> match_longest
 *   hash      worker_start -> hash_file -> sha_update -> sha_transform -> mix_round
 *   index     worker_start -> build_index -> insert_key -> btree_split
 *
 * and a fifth, logger, that makes a few syscalls with stacks of their own: a
 * record written to /dev/null every 10 ms (logger -> flush_log ->
 * write_record -> write) and a nanosleep between them.
 *
 * Build it with frame pointers, which is what the unwinder walks:
 *
 *   gcc -O0 -fno-omit-frame-pointer -pthread -o demo testdata/demo/demo.c
 *   unwindd stack --after 300ms -- ./demo
 *
 * It prints one line once every thread spins, and runs until killed, or,
 * given a number of milliseconds (demo 1000), exits after that long (for
 * perf record -- ./demo 1000).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;
static int ready;

/* spin is not a function: the leaf's own frame must be the one spinning. */
#define spin()                                                                 \
	do {                                                                   \
		__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);               \
		for (;;)                                                       \
			sink++;                                                \
	} while (0)

/* demo (main thread): a request loop stuck parsing a header. */
void parse_header(void) { spin(); }
void handle_request(void) { parse_header(); sink++; }
void dispatch(void) { handle_request(); sink++; }
void event_loop(void) { dispatch(); sink++; }
void run_server(void) { event_loop(); sink++; }

/* compress: deep in a match search. */
void match_longest(void) { spin(); }
void deflate_window(void) { match_longest(); sink++; }
void compress_block(void) { deflate_window(); sink++; }
void compress_file(void) { compress_block(); sink++; }

/* hash: inside a round of the compression function. */
void mix_round(void) { spin(); }
void sha_transform(void) { mix_round(); sink++; }
void sha_update(void) { sha_transform(); sink++; }
void hash_file(void) { sha_update(); sink++; }

/* index: splitting a B-tree node. */
void btree_split(void) { spin(); }
void insert_key(void) { btree_split(); sink++; }
void build_index(void) { insert_key(); sink++; }

/* logger: a record every 10 ms, each a write(2) under its own chain. */
void write_record(int fd, long n) {
	char b[64];
	int len = snprintf(b, sizeof b, "record %ld\n", n);
	sink += write(fd, b, len);
}
void flush_log(int fd, long n) { write_record(fd, n); sink++; }

static void *logger(void *arg) {
	(void)arg;
	pthread_setname_np(pthread_self(), "logger");
	int fd = open("/dev/null", O_WRONLY);
	for (long n = 0;; n++) {
		struct timespec ts = {0, 10 * 1000000L};
		flush_log(fd, n);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

struct worker {
	const char *name;
	void (*run)(void);
};

static void *worker_start(void *arg) {
	struct worker *w = arg;
	pthread_setname_np(pthread_self(), w->name);
	w->run();
	return NULL;
}

/* stopper ends the whole program after the milliseconds it is given. */
static void *stopper(void *arg) {
	long ms = (long)arg;
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
	exit(0);
}

int main(int argc, char **argv) {
	if (argc > 1) {
		long ms = atol(argv[1]);
		pthread_t t;
		if (ms <= 0 || pthread_create(&t, NULL, stopper, (void *)ms) != 0) {
			fprintf(stderr, "usage: demo [milliseconds to run]\n");
			return 2;
		}
	}
	static struct worker workers[] = {
		{"compress", compress_file},
		{"hash", hash_file},
		{"index", build_index},
	};
	const int n = sizeof workers / sizeof workers[0];
	for (int i = 0; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, worker_start, &workers[i]) != 0) {
			perror("demo: pthread_create");
			return 1;
		}
	}
	while (__atomic_load_n(&ready, __ATOMIC_SEQ_CST) < n)
		;
	pthread_t lt;
	if (pthread_create(&lt, NULL, logger, NULL) != 0) {
		perror("demo: pthread_create");
		return 1;
	}
	printf("demo: pid %d: main thread and %d workers (compress, hash, index) spinning, a logger writing\n", getpid(), n);
	fflush(stdout);
	run_server();
	return 0;
}
