/* Instrumented copy of lib/sockio.c for the fuzz targets (see Makefile.am). */
#include "sockio.c"
