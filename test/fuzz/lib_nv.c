/* Instrumented copy of lib/nv.c for the fuzz targets (see Makefile.am). */
#include "nv.c"
