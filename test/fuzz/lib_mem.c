/* Instrumented copy of lib/mem.c for the fuzz targets (see Makefile.am). */
#include "mem.c"
