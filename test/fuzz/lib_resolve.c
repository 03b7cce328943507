/* Instrumented copy of lib/resolve.c for the fuzz targets (see Makefile.am). */
#include "resolve.c"
