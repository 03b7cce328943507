/* Instrumented copy of lib/loop.c for the fuzz targets (see Makefile.am). */
#include "loop.c"
