/* Instrumented copy of lib/tls.c for the fuzz targets (see Makefile.am). */
#include "tls.c"
