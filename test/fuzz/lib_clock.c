/* Instrumented copy of lib/clock.c for the fuzz targets (see Makefile.am). */
#include "clock.c"
