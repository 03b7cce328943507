/* Instrumented copy of lib/edge.c for the fuzz targets (see Makefile.am). */
#include "edge.c"
