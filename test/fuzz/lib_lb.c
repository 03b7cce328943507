/* Instrumented copy of lib/lb.c for the fuzz targets (see Makefile.am). */
#include "lb.c"
