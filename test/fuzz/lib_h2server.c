/* Instrumented copy of lib/h2server.c for the fuzz targets (see Makefile.am). */
#include "h2server.c"
