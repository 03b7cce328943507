/* Instrumented copy of lib/flow.c for the fuzz targets (see Makefile.am). */
#include "flow.c"
