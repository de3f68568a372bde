/* SPDX-License-Identifier: MIT */
/*
 * Logging with levels and rate limits, to stderr or syslog (journald reads
 * both). Never pass a private key, preshared key or session key to these
 * functions; public keys may be logged.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum gw_log_level {
	GW_LOG_ERR,
	GW_LOG_WARN,
	GW_LOG_INFO,
	GW_LOG_DEBUG,
};

enum gw_log_sink {
	GW_LOG_STDERR,
	GW_LOG_SYSLOG,
};

/*
 * ident prefixes each line ("gwd"); may be called again to reconfigure. With
 * the environment variable GW_LOG_TIMESTAMPS set (and not "0"), stderr lines
 * get timestamps (gw_log_set_timestamps).
 */
void gw_log_init(const char *ident, enum gw_log_level max_level, enum gw_log_sink sink);
void gw_log_set_level(enum gw_log_level max_level);
/* Prefixes stderr lines with a UTC wall-clock time; off by default (journald stamps lines). */
void gw_log_set_timestamps(bool on);
bool gw_log_enabled(enum gw_log_level level);
/* Parses "error", "warning", "info", "debug"; -EINVAL otherwise. */
int gw_log_level_parse(const char *s, enum gw_log_level *out);

__attribute__((format(printf, 2, 3))) void gw_log(enum gw_log_level level, const char *fmt, ...);

#define gw_err(...)  gw_log(GW_LOG_ERR, __VA_ARGS__)
#define gw_warn(...) gw_log(GW_LOG_WARN, __VA_ARGS__)
#define gw_info(...) gw_log(GW_LOG_INFO, __VA_ARGS__)
#define gw_dbg(...)                                        \
	do {                                               \
		if (gw_log_enabled(GW_LOG_DEBUG))          \
			gw_log(GW_LOG_DEBUG, __VA_ARGS__); \
	} while (0)

/*
 * Token-bucket rate limit: at most `burst` events per `interval_ns`.
 * Zero-initialise with GW_RATELIMIT_INIT.
 */
struct gw_ratelimit {
	uint64_t interval_ns;
	uint32_t burst;
	uint32_t used;	     /* events allowed in the current interval */
	uint64_t begin;	     /* start of the current interval, monotonic ns */
	uint64_t suppressed; /* events refused since the last allowed one */
};
#define GW_RATELIMIT_INIT(interval, n)                  \
	{                                               \
		.interval_ns = (interval), .burst = (n) \
	}

/* True when the event may proceed; counts it as suppressed otherwise. */
bool gw_ratelimit_allow(struct gw_ratelimit *rl, uint64_t now_ns);

/*
 * Logs through rl (monotonic time from the system clock); when messages were
 * suppressed before this one, says how many.
 */
__attribute__((format(printf, 3, 4))) void gw_log_rl(struct gw_ratelimit *rl,
						     enum gw_log_level level, const char *fmt, ...);

#endif
