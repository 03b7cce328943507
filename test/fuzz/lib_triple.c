/* Instrumented copy of lib/triple.c for the fuzz targets (see Makefile.am). */
#include "triple.c"
