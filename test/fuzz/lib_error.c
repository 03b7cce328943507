/* Instrumented copy of lib/error.c for the fuzz targets (see Makefile.am). */
#include "error.c"
