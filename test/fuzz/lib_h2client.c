/* Instrumented copy of lib/h2client.c for the fuzz targets (see Makefile.am). */
#include "h2client.c"
