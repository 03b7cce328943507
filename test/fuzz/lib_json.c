/* Instrumented copy of lib/json.c for the fuzz targets (see Makefile.am). */
#include "json.c"
