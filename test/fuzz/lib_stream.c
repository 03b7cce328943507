/* Instrumented copy of lib/stream.c for the fuzz targets (see Makefile.am). */
#include "stream.c"
