/* Instrumented copy of lib/server.c for the fuzz targets (see Makefile.am). */
#include "server.c"
