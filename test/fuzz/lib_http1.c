/* Instrumented copy of lib/http1.c for the fuzz targets (see Makefile.am).
 * fuzz_server_conn reaches it with input that is not the HTTP/2 preface. */
#include "http1.c"
