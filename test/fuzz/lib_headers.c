/* Instrumented copy of lib/headers.c for the fuzz targets (see Makefile.am). */
#include "headers.c"
