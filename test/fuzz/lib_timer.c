/* Instrumented copy of lib/timer.c for the fuzz targets (see Makefile.am). */
#include "timer.c"
