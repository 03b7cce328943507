/* Instrumented copy of lib/sync.c for the fuzz targets (see Makefile.am). */
#include "sync.c"
