/* Instrumented copy of lib/status.c for the fuzz targets (see Makefile.am). */
#include "status.c"
