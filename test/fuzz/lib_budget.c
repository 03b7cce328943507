/* Instrumented copy of lib/budget.c for the fuzz targets (see Makefile.am). */
#include "budget.c"
